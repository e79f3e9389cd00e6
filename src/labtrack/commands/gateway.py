"""``labtrack gateway --config gateway.yaml``: the AI gateway alone, without a tracking database.

It answers the same routes as the gateway inside ``labtrack server``
(``mlflow.deployments``, ``/v1/chat/completions``...), with the same token rule
for TCP; calls are not stored as traces, since there is no database to hold them
(run ``labtrack server --gateway-config`` for that).
"""

from __future__ import annotations

import sys

import click


@click.command("gateway")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False),
              help="gateway.yaml: the endpoints and the model servers they route to.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", "-p", type=int, default=5000, show_default=True, help="TCP port (0 picks a free one).")
@click.option("--token", default=None, envvar="LABTRACK_SERVER_TOKEN",
              help="Token clients must send (Bearer) [default: a new random one].")
@click.option("--no-token", is_flag=True, default=False,
              help="Serve without a token (anyone who reaches the port can call the models).")
def gateway(config: str, host: str, port: int, token: str | None, no_token: bool) -> None:
    """Serve the AI gateway's endpoints from CONFIG (MLflow's gateway.yaml shape)."""
    import asyncio

    from labtrack.errors import LabtrackError
    from labtrack.server.tokens import new_token

    token = None if no_token else (token or new_token())
    try:
        asyncio.run(_serve(config, host, port, token))
    except LabtrackError as e:
        click.echo(f"labtrack: {e.message}", err=True)
        sys.exit(2)
    except OSError as e:
        click.echo(f"labtrack: cannot serve on {host}:{port}: {e.strerror or e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


async def _serve(config: str, host: str, port: int, token: str | None) -> None:
    import asyncio
    import signal

    from tornado import web
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from labtrack.server import api_gateway
    from labtrack.server.app import HealthHandler
    from labtrack.server.base import ServerContext
    from labtrack.settings import Settings

    ctx = ServerContext(store=None, logged_models=None, artifacts=None,
                        settings=Settings(gateway_config=config), token=token)
    routes = [(r"/health", HealthHandler, {"ctx": ctx}), *api_gateway.handlers(ctx)]
    app = web.Application(routes, log_function=lambda handler: None)
    sockets = bind_sockets(port, address=host)
    server = HTTPServer(app, max_body_size=64 << 20)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    names = ", ".join(e.name for e in api_gateway.gateway_of(ctx).list_endpoints()) or "none"
    print(f"labtrack gateway at http://{host}:{bound} (endpoints: {names})", flush=True)
    if token:
        print(f"Clients need the token: export MLFLOW_TRACKING_TOKEN={token}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
