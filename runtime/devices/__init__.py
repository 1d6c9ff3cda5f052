"""Lab devices: a workcell file turned into PyLabRobot machines, owned by one runner.

``workcell`` reads and checks the file and builds its machines without
running foreign code; ``session`` (``open_workcell``) sets them up on one
event-loop thread and hands steps synchronous ``DeviceHandle`` objects
(``handle``); ``publisher`` writes their status into the state directory as a
``state.devices.DeviceSnapshot`` for the dashboard, which never touches the
hardware itself; ``capture`` sends what the machines print to the run's log,
never to the terminal; ``demo`` holds the simulated demo workcell.
"""
