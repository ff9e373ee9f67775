"""Entry point the harness puts where the original's node agent puts `python -m node.executor`
(cron lines, at jobs and SERVER_START Popen): installs the fakes, then runs the ORIGINAL
`node.executor.main()` with the same arguments. How it ended is recorded (exit or exception
with its traceback), since the executor sends its own stdout and stderr to files it deletes.
"""

from __future__ import annotations

import sys
import traceback

import leo_agent_env

leo_agent_env.install(executor=True)

import node.executor  # noqa: E402  (the original's)

try:
    node.executor.main()
except SystemExit as done:
    leo_agent_env.event("exit", code=done.code)
    raise
except BaseException as err:  # the original agent crashed: record where, then fail the process
    leo_agent_env.event("exception", error=repr(err), traceback=traceback.format_exc())
    sys.__stderr__.write(traceback.format_exc())
    sys.exit(1)
else:
    leo_agent_env.event("exit", code=0)
