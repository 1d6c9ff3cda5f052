"""The runner: one coordinator process, N worker processes, one state file.

``coordinator`` drives the workers and is the only writer of the state file;
``worker`` is the worker process, ``protocol`` the messages between them,
``study`` the study files both load. ``start`` creates or adopts an
experiment and runs its coordinator; ``cli`` is ``python -m runtime.runner``;
``args`` holds the two internal command lines (the resumed runner's and the
worker's), each defined once.

Kept empty of imports: worker processes import this package and must start fast.
"""
