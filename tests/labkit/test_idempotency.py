"""labkit.idempotency: the ledger dedupes a message id atomically with its charge."""

import pytest

from labkit.idempotency import Ledger


def test_dedupe_charges_each_message_id_once_and_naive_charges_again():
    ledger = Ledger()
    assert ledger.charge("m1", 20) is True
    assert ledger.charge("m1", 20) is False
    assert (ledger.charges(), ledger.duplicates(), ledger.total()) == (1, 0, 20)
    assert ledger.charge("m1", 20, dedupe=False) is True
    assert (ledger.charges(), ledger.duplicates(), ledger.charged_ids()) == (2, 1, {"m1"})


def test_a_failed_charge_leaves_no_processed_id_behind(tmp_path):
    path = str(tmp_path / "pay.db")
    ledger = Ledger(path)
    ledger._db.execute("CREATE TRIGGER boom BEFORE INSERT ON charges BEGIN SELECT RAISE(ABORT, 'card declined'); END")
    with pytest.raises(Exception, match="card declined"):
        ledger.charge("m1", 5)
    ledger._db.execute("DROP TRIGGER boom")
    # the id was rolled back with the failed effect, so the retry charges (exactly once)
    assert ledger.charge("m1", 5) is True
    ledger.close()
    reopened = Ledger(path)  # and it is durable
    assert (reopened.charges(), reopened.charge("m1", 5)) == (1, False)
    reopened.close()


@pytest.mark.parametrize("kwargs, match", [({"message_id": ""}, "message_id"), ({"amount": -1}, "amount")])
def test_arguments_are_validated(kwargs, match):
    args = {"message_id": "m", "amount": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        Ledger().charge(args["message_id"], args["amount"])
    with pytest.raises(ValueError, match="path"):
        Ledger("")
