"""Graded assignments for the course, on otter-grader.

One job per module:

- ``catalog``: which exercises a chapter has, which cells hold their answers and checks;
- ``assignments``: ``make assignments``, the student notebook and the grading bundle of each chapter;
- ``hidden``: what the hidden checks call inside the graded kernel (the answers stay in the bundle);
- ``capstone``: chapter 10's capstone under seeds and fault schedules the student never sees;
- ``guard``: an audit hook in the graded kernel that notices reads of the hidden checks;
- ``worker``: grades one submission, isolated (own broker, own kernel, time limits);
- ``grade``: ``make grade``, every submission of a folder into one CSV.
"""
