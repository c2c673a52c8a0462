"""A local QQ Bot Open Platform: token endpoint, REST, the WebSocket gateway, and fault injection.

    async with Simulator(heartbeat_interval_ms=500) as sim:
        ...  # point a bot at sim.api_base, sim.token_url; drive it with sim.dispatch(), sim.outage(), ...

`python -m qqworker.simulator` runs the same thing standalone (see README, "The simulator").
"""

from qqworker.simulator.client_env import client_env
from qqworker.simulator.options import DEFAULT_APP_ID, DEFAULT_APP_SECRET, SimOptions
from qqworker.simulator.outage import MODES as OUTAGE_MODES
from qqworker.simulator.server import Simulator

__all__ = ["DEFAULT_APP_ID", "DEFAULT_APP_SECRET", "OUTAGE_MODES", "SimOptions", "Simulator", "client_env"]
