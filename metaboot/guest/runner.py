"""The stage runner: local → network → config → final, as cloud-init orders them.

- **local** (before the network is up): find the instance in a local source (config drive,
  NoCloud seed) — on a first boot with none, in the metadata service over an ephemeral DHCP
  lease (:mod:`metaboot.guest.dhcp`) — remember its identity, write the network configuration.
- **network**: if nothing was found locally, ask the metadata service; process user-data and
  vendor-data; run boothooks; run ``cloud_init_modules``.
- **config**: ``cloud_config_modules``. **final**: ``cloud_final_modules``, result and summary.

Each stage is its own process under systemd (``metaboot init --stage X``), sharing what they
found through ``/run/metaboot``; ``--stage all`` runs them in one process. Every module runs at
its frequency against the Root; one that fails or whose settings are invalid is reported and the
next one runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from metaboot.errors import MetabootError, UserDataError
from metaboot.guest import config as agent_config
from metaboot.guest import instancedata, layout, validation, volatile
from metaboot.guest import log as logger
from metaboot.guest.catalog import (
    STAGE_ORDER,
    Catalog,
    ModuleEntry,
    PackageRegistry,
)
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Report, Stage
from metaboot.guest.output import final_line, make_console, setup_logging, stage_lines
from metaboot.guest.records import dataclass, field
from metaboot.guest.schema import SchemaProblem
from metaboot.guest.sources import detect
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.state import State
from metaboot.guest.status import StageRecorder, StatusStore
from metaboot.guest.system import Root
from metaboot.guest.writebehind import WriteBehind
from metaboot.imports import import_module

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any, TextIO

    from metaboot.guest.catalog import ModuleRegistry
    from metaboot.guest.userdata import Script

log = logger.get("metaboot.agent")

NETWORK_SEMAPHORE = "network_config"
INJECTED_SEMAPHORE = "injected_files"
# Re-exported: the CLI and the tests name them through the runner.
__all__ = ["STAGE_ORDER", "Options", "PackageRegistry", "Runner", "run", "setup_logging"]


@dataclass
class Options:
    root: Root
    config_file: str | None = None
    out: TextIO | None = None  # console summary (stdout)
    registry: ModuleRegistry = field(default_factory=PackageRegistry)
    console: Callable[[str], None] | None = None  # once-only secrets; default /dev/console


@dataclass(frozen=True)
class LeaseInfo:
    """Sources are being tried over an ephemeral DHCP lease on ``interface``."""

    interface: str
    max_wait: float


class Runner:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.root = options.root
        self.state = State(self.root)
        self.status = StatusStore(self.root)
        self.agent = agent_config.load(self.root, options.config_file, remember=True)
        self.catalog = Catalog(self.agent.cfg, options.registry)
        self.instance: InstanceData | None = None
        self.new_instance = False
        self.tried: list[str] = []
        self.cloud_config: dict[str, Any] = {}
        self.origins: dict[str, tuple[str, int | None]] = {}
        self._processed: list[Any] = []  # this process's user/vendor Processed, for lines
        self.invalid: dict[str, list[str]] | None = None  # module -> problems, from network
        self.found_in: Stage | None = None
        self.template_warnings: list[str] = []
        self.stages: list[Stage] = []  # those this process runs
        self.fallback_network = False  # the local stage left its fallback to the network stage

    # ---- entry -------------------------------------------------------------------------

    def run(self, stages: list[Stage]) -> int:
        # The boot's files are fsynced behind it; the last stage's sync_state waits for them.
        self.root.write_behind = WriteBehind()
        try:
            return self._run(stages)
        finally:
            behind, self.root.write_behind = self.root.write_behind, None
            for problem in behind.wait():  # written after the last stage's sync: rare
                log.error("write-behind: %s", problem)

    def _run(self, stages: list[Stage]) -> int:
        self.stages = stages
        if stages and stages[0] == Stage.LOCAL:
            # A new boot: nothing found by an earlier one may be taken for this one's.
            self.root.remove(layout.BOOT_INSTANCE_FILE)
            self.status.begin_boot()
        else:
            self.status.load()
        self.status.record["config"] = {
            "files": self.agent.files,
            "problems": self.agent.problems,
        }
        for problem in self.agent.problems:
            log.error("agent config: %s", problem)
            self.say(f"metaboot: agent config problem (defaults used): {problem}")
        failed = False
        for stage in stages:
            recorder = self.status.stage(stage.value)
            try:
                self.run_stage(stage, recorder)
            except Exception as err:  # the last line of defence: record, never crash the boot
                log.exception("stage %s crashed", stage.value)
                recorder.error(f"internal error: {type(err).__name__}: {err}")
            finally:
                last = stage == stages[-1]
                if last:
                    self.sync_state(recorder)  # this process's semaphores, durable at once
                recorder.finish(save=last)  # else the next stage's start saves it
            failed = failed or bool(recorder.data["errors"])
            self.print_stage(stage, recorder)
        if Stage.FINAL in stages:
            self.status.write_result()
            self.print_final()
        return 1 if failed or self.agent.problems else 0

    def sync_state(self, rec: StageRecorder) -> None:
        for problem in self.state.sync():
            log.error("write-behind: %s", problem)
            rec.error(f"this boot's files and semaphores: {problem}")

    def run_stage(self, stage: Stage, rec: StageRecorder) -> None:
        if stage == Stage.LOCAL:
            self.stage_local(rec)
            self.run_modules(stage, rec)
            return
        if stage == Stage.NETWORK:
            if not self.stage_network(rec):
                return
        elif not self.restore(rec):
            return
        self.run_modules(stage, rec)
        if stage == Stage.FINAL and self.instance is not None and not _wrote_boot_finished(rec):
            finished = (
                f"{self.state.instance_dir(self.instance.instance_id)}/{layout.BOOT_FINISHED}"
            )
            volatile.write(self.root, finished, f"{time.time()}\n", 0o644)

    # ---- stages ------------------------------------------------------------------------

    def source_order(self, *, network: bool | None) -> list[str]:
        pinned = self.agent.pinned_source
        names = [pinned] if pinned else list(self.agent.cfg.get("datasource_list", []))
        out = []
        for name in names:
            known = detect.canonical(name)
            if known is None:
                out.append(name)
                continue
            if known in self.tried:
                continue
            if network is None or detect.is_network_source(known) == network:
                out.append(known)
        return out

    def find(
        self, names: list[str], rec: StageRecorder, lease: LeaseInfo | None = None
    ) -> InstanceData | None:
        """The first source of ``names`` that has the instance. Over an ephemeral ``lease``
        the wait is capped and nothing counts against the source: what is not found (or
        fails) then is tried again by the network stage, so it only leaves a note."""
        pinned = self.agent.pinned_source is not None

        def make_context(name: str) -> detect.SourceContext:
            settings = self.agent.source_settings(name)
            if lease is not None:
                settings["max_wait"] = min(float(settings.get("max_wait", 30.0)), lease.max_wait)
            return detect.SourceContext(
                root=self.root,
                settings=settings,
                log=logger.get(f"metaboot.source.{name}"),
                pinned=pinned,
                interface=lease.interface if lease is not None else None,
            )

        data, attempts, warnings = detect.find(names, make_context, log)
        if lease is not None:
            for attempt in attempts:
                detail = f"over the ephemeral lease: {attempt.detail or attempt.outcome}"
                rec.event(f"search-{attempt.source}", attempt.duration, detail)
                if attempt.outcome == "found":
                    self.tried.append(attempt.source)
                elif attempt.outcome == "error":
                    log.warning(
                        "source %s over the ephemeral lease: %s; tried again once the "
                        "network is up",
                        attempt.source,
                        attempt.detail,
                    )
            for warning in warnings:
                rec.recoverable(warning)
            return data
        for attempt in attempts:
            self.tried.append(attempt.source)
            rec.event(f"search-{attempt.source}", attempt.duration, attempt.outcome)
            if attempt.outcome == "error":
                rec.error(f"source {attempt.source}: {attempt.detail}")
            elif attempt.outcome == "unknown":
                rec.recoverable(f"datasource_list: unknown source {attempt.source!r}; skipped")
        for warning in warnings:
            rec.recoverable(warning)
        self.status.record["tried"] = self.tried
        return data

    def adopt(self, data: InstanceData, rec: StageRecorder) -> None:
        self.instance = data
        self.found_in = Stage(rec.name)
        self.new_instance = self.state.adopt(data)
        self.state.save_boot_instance(data, self.new_instance)
        record = self.status.record
        record.update(
            source=data.source,
            subplatform=data.subplatform,
            instance_id=data.instance_id,
            new_instance=self.new_instance,
        )
        instancedata.write(self.root, instancedata.build(data, self.root))
        log.info(
            "instance %s from %s (%s)%s",
            data.instance_id,
            data.source,
            data.subplatform,
            " — new instance" if self.new_instance else "",
        )
        self.status.save()

    def stage_local(self, rec: StageRecorder) -> None:
        first_boot = self.state.stored_instance_id() is None
        if first_boot:
            self.start_host_keys(rec)
        else:
            self.late_host_keys(rec)
        data = self.find(self.source_order(network=False), rec)
        if data is None and first_boot:
            data = self.find_over_ephemeral_lease(rec)
        if data is not None:
            if not first_boot and self.state.stored_instance_id() != data.instance_id:
                self.start_host_keys(rec)
            self.adopt(data, rec)
            self.configure_network(data, rec)
        elif self.state.stored_instance_id() is None:
            # Nothing known yet: give the first NIC DHCP so the metadata service can answer.
            if Stage.NETWORK in self.stages:
                # Unless this process runs the network stage next: nothing applies the files
                # in between, and that stage writes the instance's configuration instead, or
                # this one if it finds nothing (stage_network).
                self.fallback_network = True
                rec.event("network-config", 0.0, "fallback left to the network stage")
            else:
                self.configure_network(None, rec)
        else:
            rec.event("network-config", 0.0, "kept the previous instance's configuration")

    def start_host_keys(self, rec: StageRecorder) -> None:
        """A new instance's ssh module will want host keys: start making them now, in the
        background, so that RSA's prime search overlaps the rest of the boot instead of
        holding up the network stage (see :mod:`metaboot.guest.os.hostkeys`)."""
        from metaboot.guest.os import hostkeys

        start = time.perf_counter()
        try:
            if not any(
                e.name == "ssh" for stage in STAGE_ORDER for e in self.catalog.entries(stage)
            ):
                hostkeys.discard(self.root)  # the early starter's, if any: no module wants them
                return
            started = hostkeys.prestart(self.root, self.agent.cfg)
        except (OSError, MetabootError) as err:
            log.warning("host keys not started ahead: %s", err)
            return
        if started:
            rec.event("ssh-keygen-start", time.perf_counter() - start, ", ".join(started))

    def late_host_keys(self, rec: StageRecorder) -> None:
        """A later boot: host keys the last boot left to background jobs (see
        :mod:`metaboot.guest.os.hostkeys`) are started again if their job did not live to
        install them; failed ones are reported once, here, and removed."""
        from metaboot.guest.os import hostkeys

        if not self.root.exists(hostkeys.STAGING):
            return
        try:
            for problem in hostkeys.failed(self.root):
                rec.recoverable(f"ssh: {problem}")  # in this boot's record; then gone
            hostkeys.discard(self.root, hostkeys.failed_types(self.root))
            resumed = hostkeys.resume(self.root)
        except (OSError, MetabootError) as err:
            log.warning("host keys left to background jobs not resumed: %s", err)
            return
        if resumed:
            rec.event("ssh-keygen-resume", 0.0, ", ".join(resumed))

    def find_over_ephemeral_lease(self, rec: StageRecorder) -> InstanceData | None:
        """First boot, nothing local: lease an IPv4 address for a moment and ask the metadata
        service now (cloud-init's OpenStackLocal), so that the network configuration written
        next is the instance's own and the OS starts with it on this very boot."""
        names = self.source_order(network=True)
        settings = self.agent.cfg.get("ephemeral_dhcp", {})
        enabled = settings.get("enabled", "auto")
        if not names or enabled is False or (enabled == "auto" and not self.root.is_live):
            return None
        from metaboot.guest.dhcp import ephemeral

        max_wait = float(settings.get("max_wait", 10.0))

        def work(interface: str, _lease: object) -> InstanceData | None:
            return self.find(names, rec, LeaseInfo(interface, max_wait))

        data, episode = ephemeral.run_with_lease(work, timeout=float(settings.get("timeout", 5.0)))
        detail = f"{episode.outcome}: {episode.detail}" if episode.detail else episode.outcome
        rec.event("ephemeral-dhcp", episode.seconds, detail)
        log.info("ephemeral DHCP: %s", detail)
        if episode.outcome not in ("leased", "no NIC", "no lease"):
            rec.recoverable(f"ephemeral DHCP: {episode.detail}")
        for problem in episode.problems:
            rec.recoverable(f"ephemeral DHCP: {problem}")
        self.status.record["ephemeral_dhcp"] = {
            "interface": episode.interface,
            "outcome": episode.outcome,
            "detail": episode.detail,
            "problems": episode.problems,
        }
        return data

    def stage_network(self, rec: StageRecorder) -> bool:
        try:
            return self._stage_network(rec)
        finally:
            if self.fallback_network:  # the local stage's fallback, still owed (stage_local)
                self.fallback_network = False
                self.configure_network(None, rec)

    def _stage_network(self, rec: StageRecorder) -> bool:
        if self.instance is None:
            restored = self.state.load_boot_instance()
            if restored is not None:
                self.instance, self.new_instance = restored
                self.tried = list(self.status.record.get("tried", []))
        if self.instance is None:
            self.tried = list(self.status.record.get("tried", []))
            data = self.find(self.source_order(network=None), rec)
            if data is None:
                tried = ", ".join(self.tried) or "none configured"
                rec.error(f"no instance data found (sources tried: {tried})")
                return False
            self.adopt(data, rec)
            if detect.is_network_source(data.source):
                self.fallback_network = False  # the instance's own configuration instead
                self.configure_network(data, rec)
        self.write_injected_files(rec)
        self.consume_user_data(rec)
        return True

    def write_injected_files(self, rec: StageRecorder) -> None:
        """nova's injected files, once per instance, before any module (see injected.py)."""
        assert self.instance is not None
        iid = self.instance.instance_id
        files = self.instance.injected_files
        if not files or self.state.has_run(INJECTED_SEMAPHORE, Frequency.INSTANCE, iid):
            return
        from metaboot.guest import injected

        start = time.perf_counter()
        written, problems = injected.write(self.root, files)
        rec.event("injected-files", time.perf_counter() - start, f"{len(written)} written")
        for path in written:
            log.info("injected file %s written", path)
        for problem in problems:
            log.error("%s", problem)
            rec.error(problem)
        self.state.mark(
            INJECTED_SEMAPHORE, Frequency.INSTANCE, iid, "failed" if problems else "done"
        )

    def restore(self, rec: StageRecorder) -> bool:
        """config/final in their own process: reload what the network stage found."""
        if self.instance is None:
            restored = self.state.load_boot_instance()
            if restored is None:
                rec.error("no instance data this boot (the network stage found none); skipped")
                return False
            self.instance, self.new_instance = restored
            self.load_cloud_config()
        return True

    # ---- network -----------------------------------------------------------------------

    def configure_network(self, data: InstanceData | None, rec: StageRecorder) -> None:
        cfg = self.agent.cfg
        instance_id = data.instance_id if data is not None else ""
        if data is not None and self.state.has_run(
            NETWORK_SEMAPHORE, Frequency.INSTANCE, instance_id
        ):
            rec.event("network-config", 0.0, "already configured for this instance")
            return
        if data is not None and not self.agent.source_settings(data.source).get(
            "apply_network_config", True
        ):
            rec.event("network-config", 0.0, "apply_network_config is false")
            return
        try:
            network = import_module("metaboot.guest.network")
        except ImportError:
            rec.event("network-config", 0.0, "network rendering not installed")
            return
        start = time.perf_counter()
        report = network.configure(
            self.root,
            network_data=data.network_data if data is not None else None,
            network_config=data.network_config if data is not None else None,
            cfg=cfg,
            instance_id=instance_id,
            log=logger.get("metaboot.network"),
        )
        detail = report.skipped or (
            f"{report.renderer}: {len(report.written)} written, {len(report.removed)} removed"
        )
        rec.event("network-config", time.perf_counter() - start, detail)
        self.status.record["network"] = {
            "renderer": report.renderer,
            "written": list(report.written),
            "removed": list(report.removed),
            "degraded": bool(report.degraded),
            "skipped": report.skipped,
        }
        if report.degraded:
            messages = list(report.messages) + ([report.skipped] if report.skipped else [])
            for message in messages or ["network configuration degraded"]:
                rec.recoverable(f"network: {message}")
        if data is not None and report.renderer is not None:
            self.state.mark(NETWORK_SEMAPHORE, Frequency.INSTANCE, instance_id, "done")

    # ---- user-data ---------------------------------------------------------------------

    def consume_user_data(self, rec: StageRecorder) -> None:
        from metaboot.guest import userdata

        assert self.instance is not None
        data = self.instance
        start = time.perf_counter()
        idir = self.state.instance_dir(data.instance_id)
        if data.user_data is not None:
            volatile.write(self.root, f"{idir}/{layout.USER_DATA_RAW}", data.user_data, 0o600)
        if data.vendor_data is not None or data.vendor_data2 is not None:
            raw = {"vendor_data": _jsonable(data.vendor_data), "vendor_data2": data.vendor_data2}
            text = json.dumps(raw, default=str)
            volatile.write(self.root, f"{idir}/{layout.VENDOR_DATA_RAW}", text, 0o600)
        options = self.userdata_options(rec)
        user = userdata.process(data.user_data, "user-data", options)
        vendor = userdata.process_vendor(data.vendor_data, data.vendor_data2, options)
        user_cfg = user.merged()
        vendor_setting = user_cfg.get("vendor_data")
        vendor_enabled = not (
            isinstance(vendor_setting, dict) and vendor_setting.get("enabled") in (False, "false")
        )
        vendor_cfg = vendor.merged() if vendor_enabled else {}
        merged = agent_config.merge(vendor_cfg, user_cfg)
        origins: dict[str, tuple[str, int | None]] = {}
        for processed in ((vendor if vendor_enabled else None), user):
            if processed is None:
                continue
            for key in processed.merged():
                found = processed.origin_of((key,))
                if found is not None:
                    origins[key] = found
        problems = list(user.problems) + (list(vendor.problems) if vendor_enabled else [])
        problems += self.template_warnings
        for problem in problems:
            log.warning("%s", problem)
            rec.recoverable(problem)
        pairs = [(s, False) for s in user.scripts]
        pairs += [(s, True) for s in vendor.scripts] if vendor_enabled else []
        written = self.store_scripts(idir, pairs)
        doc = {
            "cloud_config": jsonable(merged),
            "origins": {str(k): list(v) for k, v in origins.items()},
            "parts": [vars(p) for p in user.parts + vendor.parts],
            "scripts": written,
            "problems": problems,
        }
        self.cloud_config = merged
        self.origins = origins
        self._processed = [vendor, user] if vendor_enabled else [user]
        self.invalid = self.validate_all()
        doc["invalid"] = self.invalid
        text = json.dumps(doc, default=str)
        volatile.write(self.root, f"{idir}/{layout.CLOUD_CONFIG}", text, 0o600)
        rec.event("consume-user-data", time.perf_counter() - start, f"{len(user.parts)} part(s)")
        self.check_unknown_keys(rec)
        self.run_boothooks(idir, [s for s, _ in pairs if s.kind == "boothook"], rec)

    def userdata_options(self, rec: StageRecorder) -> Any:
        from metaboot.guest import userdata

        settings = self.agent.cfg.get("user_data", {})
        assert self.instance is not None
        instance = self.instance

        def variables() -> dict[str, Any]:
            return instancedata.template_variables(instancedata.build(instance, self.root))

        def render(text: str) -> str:
            # The template machinery only for a template part: most boots have none.
            from metaboot.guest import template

            return template.make_renderer(variables, self.template_warnings)(text)

        max_bytes = int(settings.get("max_bytes", 1024 * 1024))

        def fetch(url: str) -> bytes:
            from metaboot.guest.http import RetryPolicy, fetch

            policy = RetryPolicy(
                timeout=float(settings.get("include_timeout", 5.0)),
                retries=int(settings.get("include_retries", 3)),
            )
            response = fetch("GET", url, policy, max_body=max_bytes)
            if not response.ok:
                raise UserDataError(f"HTTP {response.status}")
            return response.body

        return userdata.Options(
            max_bytes=max_bytes,
            include_depth=int(settings.get("include_depth", 5)),
            fetch=fetch,
            render=render,
        )

    def store_scripts(self, idir: str, pairs: list[tuple[Script, bool]]) -> list[str]:
        previous: list[str] = []
        try:
            old = json.loads(self.root.read_bytes(f"{idir}/{layout.CLOUD_CONFIG}"))
            previous = [p for p in old.get("scripts", []) if isinstance(p, str)]
        except (OSError, ValueError):
            pass
        if not pairs and not previous:
            return []  # nothing to write or remove: most boots have no script
        from metaboot.guest import scripts

        return scripts.store(self.root, idir, pairs, previous)

    def run_boothooks(self, idir: str, hooks: list[Script], rec: StageRecorder) -> None:
        if not hooks:
            return
        from metaboot.guest import scripts

        assert self.instance is not None
        for outcome in scripts.run_boothooks(
            self.root, idir, hooks, self.instance.instance_id, self.effective_cfg()
        ):
            what = f"boothook {outcome.name} ({outcome.origin})"
            if not outcome.ran:
                rec.recoverable(f"{what} not run: {outcome.problem}")
                continue
            detail = "failed" if outcome.problem else "exit 0"
            rec.event(f"boothook-{outcome.name}", outcome.duration, detail)
            if outcome.problem:
                log.error("%s %s", what, outcome.problem)
                rec.error(f"{what} {outcome.problem}")

    def load_cloud_config(self) -> None:
        assert self.instance is not None
        path = f"{self.state.instance_dir(self.instance.instance_id)}/{layout.CLOUD_CONFIG}"
        try:
            doc = json.loads(self.root.read_bytes(path))
        except (OSError, ValueError):
            return
        if not isinstance(doc, dict):
            return
        self.cloud_config = doc.get("cloud_config", {})
        self.origins = {k: (v[0], v[1]) for k, v in doc.get("origins", {}).items()}
        invalid = doc.get("invalid")
        self.invalid = invalid if isinstance(invalid, dict) else None

    # ---- modules -----------------------------------------------------------------------

    def effective_cfg(self) -> dict[str, Any]:
        return agent_config.merge(self.agent.cfg, self.cloud_config)

    def check_unknown_keys(self, rec: StageRecorder) -> None:
        # The modules this configuration gives work to read almost every key it has; the
        # others are loaded only if a key is left that none of those reads.
        cfg = self.effective_cfg()
        unknown = validation.unknown_keys(self.cloud_config, self.catalog.listed(busy=cfg))
        if unknown:
            unknown = validation.unknown_keys(self.cloud_config, self.catalog.listed())
        for key in unknown:
            label, line = self.origins.get(key, ("user-data", None))
            at = f" (line {line})" if line else ""
            shown = repr(key) if isinstance(key, str) else str(key)
            message = f"{label}: key {shown}{at} is not supported by metaboot; ignored"
            log.warning("%s", message)
            rec.recoverable(message)

    def run_modules(self, stage: Stage, rec: StageRecorder) -> None:
        entries = self.catalog.entries(stage)
        if not entries or (self.instance is None and stage != Stage.LOCAL):
            return
        cfg = self.effective_cfg()
        for entry in entries:
            result = self.run_module(entry, stage, cfg, rec)
            rec.module(result)

    def run_module(
        self, entry: ModuleEntry, stage: Stage, cfg: dict[str, Any], rec: StageRecorder
    ) -> dict[str, Any]:
        result: dict[str, Any] = {"name": entry.name, "stage": stage.value}
        odd_frequency = (
            isinstance(entry.raw, list) and len(entry.raw) > 1 and entry.frequency is None
        )
        if not odd_frequency and self.catalog.idle(entry.name, cfg):
            # Known to have nothing to do without importing it (as below, after importing).
            result.update(result="skipped", reason="no configuration for it")
            return result
        module = self.catalog.load(entry.name)
        if not isinstance(module, Module):
            result.update(result="unavailable", reason=str(module) or type(module).__name__)
            log.info("module %s: not available (%s); skipped", entry.name, module)
            return result
        frequency = entry.frequency or module.frequency
        result["frequency"] = frequency.value
        if odd_frequency:
            rec.recoverable(
                f"module {entry.name}: unknown frequency {entry.raw[1]!r}; using {frequency.value}"
            )
        if module.keys and not any(key in cfg for key in module.keys):
            result.update(result="skipped", reason="no configuration for it")
            return result
        instance = self.instance or InstanceData(source="None", instance_id="iid-none")
        if self.state.has_run(module.name, frequency, instance.instance_id):
            result.update(result="already-ran", reason=f"{frequency.value}: ran before")
            return result
        if self.invalid is not None and stage != Stage.LOCAL:
            invalid = self.invalid.get(module.name, [])
        else:
            invalid = self.invalid_settings(module, cfg)
        if invalid:
            result.update(result="invalid", errors=invalid)
            for problem in invalid:
                message = f"module {module.name}: {problem}; not run"
                log.error("%s", message)
                rec.error(message)
            return result
        report = Report()
        ctx = ModuleContext(
            cfg=cfg,
            instance=instance,
            root=self.root,
            log=logger.get(f"metaboot.modules.{module.name}"),
            report=report,
            console=self.console(),
            state_dir=self.state.instance_dir(instance.instance_id),
        )
        start = time.perf_counter()
        try:
            module.handle(ctx)
            outcome = "changed" if report.changes else "ok"
            error = None
        except MetabootError as err:
            outcome, error = "failed", str(err)
        except Exception as err:
            ctx.log.exception("module %s failed", module.name)
            outcome, error = "failed", f"{type(err).__name__}: {err}"
        duration = time.perf_counter() - start
        self.state.mark(module.name, frequency, instance.instance_id, outcome)
        result.update(
            result=outcome,
            duration=round(duration, 6),
            changes=report.changes,
            warnings=report.warnings,
        )
        for warning in report.warnings:
            log.warning("module %s: %s", module.name, warning)
            rec.recoverable(f"module {module.name}: {warning}")
        if error is not None:
            result["error"] = error
            log.error("module %s failed: %s", module.name, error)
            rec.error(f"module {module.name} failed: {error}")
        else:
            log.info("module %s: %s (%.3f s)", module.name, outcome, duration)
        return result

    def validate_all(self) -> dict[str, list[str]]:
        """Check every listed module's settings once, while the parts' text (and so the exact
        line of a nested mistake) is at hand; later stages use the stored verdicts."""
        cfg = self.effective_cfg()
        verdicts: dict[str, list[str]] = {}
        for module in self.catalog.listed(STAGE_ORDER[1:], busy=cfg):  # those that will run
            verdicts[module.name] = self.invalid_settings(module, cfg)
        return verdicts

    def invalid_settings(self, module: Module, cfg: Mapping[str, Any]) -> list[str]:
        return [self.describe(p) for p in validation.module_problems(module, cfg)]

    def describe(self, problem: SchemaProblem) -> str:
        key = problem.path[0] if problem.path else None
        label, line = ("agent config", None)
        exact = None
        for processed in self._processed:
            exact = processed.origin_of(problem.path) or exact
        if exact is not None:
            label, line = exact
        elif isinstance(key, str) and key in self.origins:
            label, line = self.origins[key]
        at = f" (line {line})" if line else ""
        return f"{label}: {problem.where or '(top level)'}: {problem.message}{at}"

    # ---- output ------------------------------------------------------------------------

    def console(self) -> Callable[[str], None]:
        if self.options.console is not None:
            return self.options.console
        return make_console(self.root, self.options.out)

    def say(self, line: str) -> None:
        if self.options.out is not None:
            print(line, file=self.options.out, flush=True)

    def print_stage(self, stage: Stage, rec: StageRecorder) -> None:
        found_here = self.found_in == stage
        for line in stage_lines(stage.value, self.status.record, found_here=found_here):
            self.say(line)

    def print_final(self) -> None:
        self.say(final_line(self.status.record))


def _wrote_boot_finished(rec: StageRecorder) -> bool:
    """final_message writes ``boot-finished`` in cloud-init's words (uptime, time, version);
    the runner writes its own only when that module did not run, instead of overwriting it."""
    return any(
        m.get("name") == "final_message" and m.get("result") in ("changed", "ok")
        for m in rec.data["modules"]
    )


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: YAML may have dates or numbers as keys and dates as values."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def run(options: Options, stages: list[Stage]) -> int:
    return Runner(options).run(stages)
