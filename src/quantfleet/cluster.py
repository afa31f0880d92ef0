"""Cluster control: ``quantfleet cluster up|down|status|scale`` on four providers.

``local`` runs Ray's autoscaler on this machine (fake_multinode: worker raylets are started and
stopped on demand as if they were cloud nodes); ``aws`` wraps the Ray cluster launcher,
``kuberay`` wraps ``kubectl`` and ``skypilot`` the ``sky`` CLI of its own virtual environment.
Everything runs as subprocesses; Ray is imported only inside the functions that need it and
SkyPilot never (it lives in another venv).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from quantfleet.errors import ConfigError, ExecutionError

__all__ = [
    "PROVIDERS",
    "REMOTE_GCS_PORT",
    "SKYPILOT_SPEC",
    "STATE_DIR",
    "AsJson",
    "Config",
    "DryRun",
    "Name",
    "Provider",
    "StateDir",
    "app",
    "deploy_dir",
    "down_cmd",
    "ensure_skypilot_venv",
    "local_down",
    "local_scale",
    "local_status",
    "local_up",
    "provider_commands",
    "render_local_config",
    "scale_cmd",
    "skypilot_venv_path",
    "status_cmd",
    "stop_head",
    "up_cmd",
]

PROVIDERS = ("local", "aws", "kuberay", "skypilot")
SKYPILOT_SPEC = os.environ.get("QUANTFLEET_SKYPILOT_SPEC", "skypilot==0.14.1")
STATE_DIR = Path(".quantfleet") / "cluster"
# GCS port of our Ray on clusters: Ray's default, which KubeRay's autoscaler sidecar assumes
# (it is started without --gcs-address); SkyPilot's own runtime Ray holds 6380 on its nodes
# (sky.skylet.constants.SKY_REMOTE_RAY_PORT), so ours must not use that one
REMOTE_GCS_PORT = 6379
_READY_LINE = "will now block forever"


def deploy_dir() -> Path:
    """The ``deploy/`` folder: ``$QUANTFLEET_DEPLOY_DIR``, ``./deploy``, or the source tree's."""
    env = os.environ.get("QUANTFLEET_DEPLOY_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd() / "deploy", Path(__file__).resolve().parents[2] / "deploy"]
    for c in candidates:
        if (c / "ray").is_dir():
            return c
    raise ConfigError(
        "cannot find the deploy/ folder (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); run from the quantfleet repository or set QUANTFLEET_DEPLOY_DIR")


def _default_config(provider: str) -> Path:
    rel = {"local": "ray/fake_multinode.yaml", "aws": "ray/aws.yaml",
           "kuberay": "k8s/raycluster.yaml", "skypilot": "skypilot/ray-cluster.yaml"}[provider]
    return deploy_dir() / rel


def _check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        import difflib

        hint = difflib.get_close_matches(provider, PROVIDERS, n=1)
        raise ConfigError(f"--provider {provider!r}: unknown provider"
                          + (f"; did you mean {hint[0]!r}?" if hint else "")
                          + f" (choose from {', '.join(PROVIDERS)})")
    return provider


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _ray_exe() -> str:
    here = Path(sys.executable).parent / "ray"
    if here.exists():
        return str(here)
    found = shutil.which("ray")
    if not found:
        raise ExecutionError("the `ray` command is not installed; pip install 'quantfleet[ray]'")
    return found


def _ray_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.update(extra or {})
    return env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


# ----------------------------------------------------------------------------- local provider


def _state_file(state_dir: Path) -> Path:
    return Path(state_dir) / "state.json"


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    f = _state_file(state_dir)
    if not f.exists():
        return None
    return json.loads(f.read_text())


def render_local_config(config: Path, gcs_address: str, out: Path) -> Path:
    """Copy the fake_multinode config with ``provider.gcs_address`` set to the head's address
    (the provider otherwise connects new nodes to port 6379)."""
    import yaml

    cfg = yaml.safe_load(Path(config).read_text())
    cfg.setdefault("provider", {})["gcs_address"] = gcs_address
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def local_up(state_dir: Path = STATE_DIR, config: Path | None = None, *, port: int | None = None,
             dashboard_port: int | None = None, client_port: int | None = None,
             wait_s: float = 120.0) -> dict[str, Any]:
    """Start a local autoscaling Ray head (0 CPUs; workers come from the autoscaler).

    Returns the state written to ``state_dir/state.json``: pid, address, ports, temp dir.
    """
    state_dir = Path(state_dir).resolve()
    old = _read_state(state_dir)
    if old and _pid_alive(int(old["pid"])):
        raise ExecutionError(f"a local cluster is already running (pid {old['pid']}, address "
                             f"{old['address']}); run `quantfleet cluster down` first")
    from ray._private.services import get_node_ip_address  # the IP the head will use

    ip = get_node_ip_address()
    port = port or _free_port()
    client_port = client_port or _free_port()
    dashboard_port = dashboard_port or _free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    # short path: Ray's unix sockets live under it (108-byte limit)
    temp_dir = Path(tempfile.mkdtemp(prefix="qf-ray-"))
    cfg = render_local_config(config or _default_config("local"), f"{ip}:{port}",
                              state_dir / "autoscaling.yaml")
    cmd = [_ray_exe(), "start", "--head", "--num-cpus=0", f"--port={port}",
           f"--temp-dir={temp_dir}", f"--ray-client-server-port={client_port}",
           f"--dashboard-port={dashboard_port}", "--dashboard-agent-listen-port=0",
           f"--autoscaling-config={cfg}", "--disable-usage-stats", "--block"]
    log = state_dir / "head.log"
    env = _ray_env({"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"})
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    state = {"provider": "local", "pid": proc.pid, "address": f"{ip}:{port}", "port": port,
             "client_address": f"ray://{ip}:{client_port}",
             "dashboard": f"http://127.0.0.1:{dashboard_port}", "temp_dir": str(temp_dir),
             "config": str(cfg), "log": str(log), "started_at": time.time()}
    deadline = time.monotonic() + wait_s
    while True:
        if proc.poll() is not None:
            stop_head(proc.pid, str(temp_dir))
            raise ExecutionError(f"the Ray head exited with code {proc.returncode} while "
                                 f"starting; see {log}:\n{_tail(log)}")
        if _READY_LINE in log.read_text(errors="replace"):
            break
        if time.monotonic() > deadline:
            stop_head(proc.pid, str(temp_dir))
            raise ExecutionError(f"the Ray head did not start within {wait_s:.0f} s; see "
                                 f"{log}:\n{_tail(log)}")
        time.sleep(0.25)
    _state_file(state_dir).write_text(json.dumps(state, indent=2))
    return state


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _live_pids(match) -> list[int]:
    """Live (non-zombie) processes ``p`` for which ``match(cmdline, pgrp)`` is true."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and match(cmd, int(fields[2])):
            out.append(int(p.name))
    return out


def stop_head(pid: int, temp_dir: str | None = None, *, grace_s: float = 5.0) -> list[int]:
    """Stop a ``ray start --head --block`` process by its PID, never ``ray stop``.

    SIGTERM to its process group, SIGKILL after ``grace_s``; then SIGKILL every process left
    whose command line names ``temp_dir`` (the raylets the fake provider started, their
    workers). Returns the leftover PIDs that had to be killed.
    """
    def signal_group(sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def reap() -> None:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        reap()
        if not _pid_alive(pid):
            break
        time.sleep(0.2)
    signal_group(signal.SIGKILL)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # SIGKILL is delivered asynchronously
        reap()
        if not _live_pids(lambda _cmd, pgrp: pgrp == pid):
            break
        time.sleep(0.1)
    leftovers: list[int] = []
    if temp_dir:
        for _ in range(3):  # workers may respawn briefly while their raylet dies
            found = _live_pids(lambda cmd, _pgrp: str(temp_dir) in cmd)
            for p in found:
                try:
                    os.kill(p, signal.SIGKILL)
                    leftovers.append(p)
                except ProcessLookupError:
                    pass
            if not found:
                break
            time.sleep(0.3)
    return sorted(set(leftovers))


def local_down(state_dir: Path = STATE_DIR) -> dict[str, Any]:
    """Stop the local cluster recorded in ``state_dir`` and remove its state file."""
    state = _read_state(Path(state_dir))
    if state is None:
        raise ExecutionError(f"no local cluster recorded in {state_dir}; nothing to stop "
                             "(start one with `quantfleet cluster up`)")
    killed = stop_head(int(state["pid"]), state.get("temp_dir"))
    _state_file(Path(state_dir)).unlink(missing_ok=True)
    if state.get("temp_dir"):
        shutil.rmtree(state["temp_dir"], ignore_errors=True)
    return {"stopped": state["pid"], "address": state["address"], "leftovers_killed": killed}


_QUERY = """
import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
act = sys.argv[2]
if act == "scale":
    from ray.autoscaler.sdk import request_resources
    request_resources(num_cpus=int(sys.argv[3]))
    print(json.dumps({"requested_cpus": int(sys.argv[3])}))
else:
    nodes = [{"node_id": n["NodeID"], "alive": n["Alive"], "ip": n["NodeManagerAddress"],
              "resources": n.get("Resources", {})} for n in ray.nodes()]
    print(json.dumps({"nodes": nodes, "alive": sum(n["alive"] for n in nodes),
                      "resources": ray.cluster_resources(),
                      "available": ray.available_resources()}))
"""


def _query(address: str, *args: str, timeout_s: float = 60.0) -> dict[str, Any]:
    try:
        r = subprocess.run([sys.executable, "-c", _QUERY, address, *args], capture_output=True,
                           text=True, env=_ray_env(), timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise ExecutionError(f"no answer from Ray at {address} within {timeout_s:.0f} s") from e
    if r.returncode != 0:
        raise ExecutionError(f"cannot reach Ray at {address}: "
                             f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _running_state(state_dir: Path) -> dict[str, Any]:
    state = _read_state(Path(state_dir))
    if state is None or not _pid_alive(int(state["pid"])):
        raise ExecutionError(f"no local cluster is running (state in {state_dir}); start one "
                             "with `quantfleet cluster up`")
    return state


def local_status(state_dir: Path = STATE_DIR) -> dict[str, Any]:
    """Nodes and resources of the running local cluster (queried from a subprocess)."""
    state = _running_state(state_dir)
    return {**state, **_query(state["address"], "status")}


def local_scale(n_cpus: int, state_dir: Path = STATE_DIR) -> dict[str, Any]:
    """Ask the autoscaler for ``n_cpus`` CPUs now (``request_resources``); 0 releases them."""
    if n_cpus < 0:
        raise ConfigError(f"scale: CPUs must be >= 0 (got {n_cpus}); 0 releases the request")
    state = _running_state(state_dir)
    return {"address": state["address"], **_query(state["address"], "scale", str(n_cpus))}


# ----------------------------------------------------------------------------- remote providers


def skypilot_venv_path() -> Path:
    """``$QUANTFLEET_SKYPILOT_VENV``, else ``.quantfleet/skypilot-venv`` under the cwd."""
    env = os.environ.get("QUANTFLEET_SKYPILOT_VENV")
    return Path(env) if env else Path.cwd() / ".quantfleet" / "skypilot-venv"


def _clean_env() -> dict[str, str]:
    """The environment for another venv's tools: none of this venv's Python settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "RAY_ADDRESS")}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p != venv_bin)
    return env


def ensure_skypilot_venv(path: Path | None = None, spec: str = SKYPILOT_SPEC,
                         env: dict[str, str] | None = None) -> Path:
    """Create (once) a virtual environment holding SkyPilot; return its path.

    An existing one is reused when ``import sky`` works there. SkyPilot's pins (click, uvicorn,
    protobuf) clash with Ray's and Prefect's, so it never enters quantfleet's own environment.
    """
    path = Path(path or skypilot_venv_path())
    py = path / "bin" / "python"
    env = env or _clean_env()
    if py.exists() and subprocess.run([str(py), "-c", "import sky"], env=env,
                                      capture_output=True).returncode == 0:
        return path
    steps = [[sys.executable, "-m", "venv", "--clear", str(path)],
             [str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"],
             [str(py), "-m", "pip", "install", "-q", spec]]
    for cmd in steps:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise ExecutionError(f"creating the SkyPilot venv at {path} failed at "
                                 f"`{shlex.join(cmd)}`: {r.stderr.strip()[-500:]}")
    return path


_SCALE_PY = ('import ray; ray.init(address="auto"); '
             'from ray.autoscaler.sdk import request_resources; '
             'request_resources(num_cpus={n}); print("requested {n} CPUs")')


def provider_commands(provider: str, action: str, *, config: Path | None = None,
                      name: str = "quantfleet", n: int | None = None,
                      nodes: int | None = None, sky: str | None = None) -> list[list[str]]:
    """The command lines ``quantfleet cluster ACTION --provider PROVIDER`` runs (aws, kuberay,
    skypilot), in order."""
    _check_provider(provider)
    if provider == "local":
        raise ConfigError("the local provider runs no external commands")
    if action not in ("up", "down", "status", "scale"):
        raise ConfigError(f"unknown action {action!r} (up, down, status, scale)")
    if action == "scale" and (n is None or n < 0):
        raise ConfigError(f"scale: CPUs must be >= 0 (got {n})")
    cfg = str(config or _default_config(provider))
    if provider == "aws":
        return {
            "up": [["ray", "up", "-y", "--no-config-cache", cfg]],
            "down": [["ray", "down", "-y", cfg]],
            "status": [["ray", "exec", cfg,
                        f"~/qf-venv/bin/ray status --address localhost:{REMOTE_GCS_PORT}"]],
            "scale": [["ray", "exec", cfg, "~/qf-venv/bin/python -c " +
                       shlex.quote(_SCALE_PY.format(n=n))]],
        }[action]
    if provider == "kuberay":
        return {
            "up": [["kubectl", "apply", "-f", cfg]],
            "down": [["kubectl", "delete", "-f", cfg]],
            "status": [["kubectl", "get", "raycluster", name, "-o", "wide"],
                       ["kubectl", "get", "pods", "-l", f"ray.io/cluster={name}", "-o", "wide"]],
            "scale": [["kubectl", "exec", f"svc/{name}-head-svc", "-c", "ray-head", "--",
                       "python", "-c", _SCALE_PY.format(n=n)]],
        }[action]
    sky = sky or str(skypilot_venv_path() / "bin" / "sky")
    if action == "scale":
        raise ConfigError("skypilot clusters have a fixed node count: `quantfleet cluster down "
                          "--provider skypilot`, then `up --provider skypilot --nodes N`")
    up = [sky, "launch", "-y", "-c", name, cfg]
    if nodes:
        up[3:3] = ["--num-nodes", str(nodes)]
    return {"up": [up], "down": [[sky, "down", "-y", name]],
            "status": [[sky, "status", name]]}[action]


def _run_remote(provider: str, action: str, dry_run: bool, **kw: Any) -> None:
    if provider == "skypilot" and not dry_run:
        kw["sky"] = str(ensure_skypilot_venv() / "bin" / "sky")
    cmds = provider_commands(provider, action, **kw)
    for cmd in cmds:
        typer.echo(("would run: " if dry_run else "+ ") + shlex.join(cmd))
    if dry_run:
        return
    env = _clean_env() if provider == "skypilot" else os.environ.copy()
    for cmd in cmds:
        exe = cmd[0]
        if exe == "ray":
            exe = _ray_exe()
        elif not Path(exe).exists() and not shutil.which(exe):
            raise ExecutionError(f"`{exe}` is not installed; {provider} needs it "
                                 "(see docs/deploy.md)")
        r = subprocess.run([exe, *cmd[1:]], env=env)
        if r.returncode != 0:
            raise ExecutionError(f"`{shlex.join(cmd)}` failed with exit code {r.returncode}")


# ----------------------------------------------------------------------------- CLI

app = typer.Typer(help="Start, inspect, scale and stop a Ray cluster (local autoscaler, AWS, "
                       "KubeRay, SkyPilot).", no_args_is_help=True)

Provider = Annotated[str | None, typer.Option(
    "--provider", help="local (default) | aws | kuberay | skypilot")]
Config = Annotated[Path | None, typer.Option(
    "--config", help="Cluster config (default: the one shipped in deploy/).")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Print the commands (aws, kuberay, skypilot) without running them.")]
StateDir = Annotated[Path, typer.Option(
    "--state-dir", help="Where the local cluster's PID, address and logs are kept.")]
Name = Annotated[str, typer.Option("--name", help="Cluster name (kuberay, skypilot).")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.callback()
def _group(ctx: typer.Context, provider: Provider = None) -> None:
    """Cluster control; --provider here applies to the subcommand."""
    ctx.obj = {"provider": provider}


def _provider(ctx: typer.Context, provider: str | None) -> str:
    chosen = provider or (ctx.obj or {}).get("provider") or "local"
    return _check_provider(chosen)


def _echo(obj: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(obj, indent=2, default=str))
        return
    for k, v in obj.items():
        typer.echo(f"{k:>15}: {v}")


@app.command("up")
def up_cmd(ctx: typer.Context, provider: Provider = None, config: Config = None,
           dry_run: DryRun = False, state_dir: StateDir = STATE_DIR, name: Name = "quantfleet",
           nodes: Annotated[int | None, typer.Option(
               "--nodes", help="Nodes to launch (skypilot).")] = None,
           port: Annotated[int | None, typer.Option(
               "--port", help="GCS port of the local head (default: a free port).")] = None,
           as_json: AsJson = False) -> None:
    """Start a cluster. local: an autoscaling Ray head on this machine (workers on demand)."""
    p = _provider(ctx, provider)
    if p != "local":
        _run_remote(p, "up", dry_run, config=config, name=name, nodes=nodes)
        return
    if dry_run:
        typer.echo("would start: RAY_FAKE_CLUSTER=1 ray start --head --num-cpus=0 "
                   f"--autoscaling-config={config or _default_config('local')} --block")
        return
    state = local_up(state_dir, config, port=port)
    _echo(state, as_json)
    if not as_json:
        typer.echo(f"use it: --ray-address {state['address']} (or {state['client_address']})")


@app.command("down")
def down_cmd(ctx: typer.Context, provider: Provider = None, config: Config = None,
             dry_run: DryRun = False, state_dir: StateDir = STATE_DIR, name: Name = "quantfleet",
             as_json: AsJson = False) -> None:
    """Stop the cluster (local: the head by its PID, then any node it left behind)."""
    p = _provider(ctx, provider)
    if p != "local":
        _run_remote(p, "down", dry_run, config=config, name=name)
        return
    _echo(local_down(state_dir), as_json)


@app.command("status")
def status_cmd(ctx: typer.Context, provider: Provider = None, config: Config = None,
               dry_run: DryRun = False, state_dir: StateDir = STATE_DIR,
               name: Name = "quantfleet", as_json: AsJson = False) -> None:
    """Nodes and resources of the cluster."""
    p = _provider(ctx, provider)
    if p != "local":
        _run_remote(p, "status", dry_run, config=config, name=name)
        return
    st = local_status(state_dir)
    if as_json:
        _echo(st, True)
        return
    typer.echo(f"local cluster {st['address']} (pid {st['pid']}), dashboard {st['dashboard']}")
    for nd in st["nodes"]:
        if nd["alive"]:
            cpus = nd["resources"].get("CPU", 0)
            typer.echo(f"  node {nd['node_id'][-8:]}  {nd['ip']:<20} CPU {cpus:g}")
    used = st["resources"].get("CPU", 0) - st["available"].get("CPU", 0)
    typer.echo(f"{st['alive']} nodes alive; CPU {used:g}/{st['resources'].get('CPU', 0):g} in use")


@app.command("scale")
def scale_cmd(ctx: typer.Context,
              cpus: Annotated[int, typer.Argument(help="CPUs to request now (0 releases).")],
              provider: Provider = None, config: Config = None, dry_run: DryRun = False,
              state_dir: StateDir = STATE_DIR, name: Name = "quantfleet",
              as_json: AsJson = False) -> None:
    """Ask the autoscaler for N CPUs now (ray.autoscaler.sdk.request_resources)."""
    p = _provider(ctx, provider)
    if p != "local":
        _run_remote(p, "scale", dry_run, config=config, name=name, n=cpus)
        return
    _echo(local_scale(cpus, state_dir), as_json)
