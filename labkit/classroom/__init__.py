"""Classroom mode: a whole class as one distributed system on a shared broker.

- ``instructor.Classroom``: create a class (its own vhost, a user per learner), admit learners, command them.
- ``learner.Learner``: the agent a learner's kernel runs after pasting the join code.
- ``experiments``: load leveling, competing consumers, fan-out, temporal coupling, a consumer killed mid-run.
- ``dashboard.Dashboard``: live plotly figures of the class.
- ``simulate.SimulatedClass``: N learner processes on this machine, for rehearsal, tests and the book.
- ``provision``: RabbitMQ's management HTTP API (also served by the embedded broker) or rabbitmqctl.
"""

from .instructor import Classroom, Member
from .joincode import JoinCode
from .learner import Learner
from .simulate import SimulatedClass

__all__ = ["Classroom", "JoinCode", "Learner", "Member", "SimulatedClass"]
