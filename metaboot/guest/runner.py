"""The stage runner: local → network → config → final, as cloud-init orders them.

- **local** (before the network is up): find the instance in a local source (config drive,
  NoCloud seed), remember its identity, write the network configuration.
- **network**: if nothing was found locally, ask the metadata service; process user-data and
  vendor-data; run boothooks; run ``cloud_init_modules``.
- **config**: ``cloud_config_modules``. **final**: ``cloud_final_modules``, result and summary.

Each stage is its own process under systemd (``metaboot init --stage X``), sharing what they
found through ``/run/metaboot``; ``--stage all`` runs them in one process. Every module runs at
its frequency against the Root; one that fails or whose settings are invalid is reported and the
next one runs.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from metaboot.errors import MetabootError, UserDataError
from metaboot.guest import config as agent_config
from metaboot.guest import instancedata, layout, validation, volatile
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Report, Stage
from metaboot.guest.schema import SchemaProblem
from metaboot.guest.sources import detect
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.state import State, parse_frequency
from metaboot.guest.status import StageRecorder, StatusStore, summarize
from metaboot.guest.system import Root

log = logging.getLogger("metaboot.agent")

STAGE_ORDER = (Stage.LOCAL, Stage.NETWORK, Stage.CONFIG, Stage.FINAL)
MODULE_LIST_KEYS = {
    Stage.NETWORK: "cloud_init_modules",
    Stage.CONFIG: "cloud_config_modules",
    Stage.FINAL: "cloud_final_modules",
}
BOOTHOOK_TIMEOUT = 300.0
NETWORK_SEMAPHORE = "network_config"


class ModuleRegistry(Protocol):
    """Where modules come from (the modules package, or a test's own)."""

    def defaults(self) -> Mapping[Stage, list[str]]: ...

    def load(self, name: str) -> Module: ...


class PackageRegistry:
    """The modules engineer's ``DEFAULT_MODULES`` and ``load_module``, when present."""

    def defaults(self) -> Mapping[Stage, list[str]]:
        try:
            from metaboot.guest.modules import DEFAULT_MODULES  # type: ignore[attr-defined]
        except ImportError:
            return {}
        return DEFAULT_MODULES  # type: ignore[no-any-return]

    def load(self, name: str) -> Module:
        try:
            from metaboot.guest.modules import load_module  # type: ignore[attr-defined]
        except ImportError:
            raise LookupError(
                f"no module {name!r} (the module registry is not installed)"
            ) from None
        module: Module = load_module(name)
        return module


@dataclass
class Options:
    root: Root
    config_file: str | None = None
    out: TextIO | None = None  # console summary (stdout)
    registry: ModuleRegistry = field(default_factory=PackageRegistry)
    console: Callable[[str], None] | None = None  # once-only secrets; default /dev/console


@dataclass
class ModuleEntry:
    name: str
    frequency: Frequency | None
    raw: Any


class Runner:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.root = options.root
        self.state = State(self.root)
        self.status = StatusStore(self.root)
        self.registry = options.registry
        self.agent = agent_config.load(self.root, options.config_file)
        self.instance: InstanceData | None = None
        self.new_instance = False
        self.tried: list[str] = []
        self.cloud_config: dict[str, Any] = {}
        self.origins: dict[str, tuple[str, int | None]] = {}
        self._modules_cache: dict[str, Module | Exception] = {}
        self._processed: list[Any] = []  # this process's user/vendor Processed, for lines
        self.invalid: dict[str, list[str]] | None = None  # module -> problems, from network
        self.found_in: Stage | None = None
        self.template_warnings: list[str] = []

    # ---- entry -------------------------------------------------------------------------

    def run(self, stages: list[Stage]) -> int:
        if stages and stages[0] == Stage.LOCAL:
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
                recorder.finish()
            failed = failed or bool(recorder.data["errors"])
            self.print_stage(stage, recorder)
        if Stage.FINAL in stages:
            self.status.write_result()
            self.print_final()
        return 1 if failed or self.agent.problems else 0

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
        if stage == Stage.FINAL and self.instance is not None:
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

    def find(self, names: list[str], rec: StageRecorder) -> InstanceData | None:
        pinned = self.agent.pinned_source is not None

        def make_context(name: str) -> detect.SourceContext:
            return detect.SourceContext(
                root=self.root,
                settings=self.agent.source_settings(name),
                log=logging.getLogger(f"metaboot.source.{name}"),
                pinned=pinned,
            )

        data, attempts, warnings = detect.find(names, make_context, log)
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
        data = self.find(self.source_order(network=False), rec)
        if data is not None:
            self.adopt(data, rec)
            self.configure_network(data, rec)
        elif self.state.stored_instance_id() is None:
            # Nothing known yet: give the first NIC DHCP so the metadata service can answer.
            self.configure_network(None, rec)
        else:
            rec.event("network-config", 0.0, "kept the previous instance's configuration")

    def stage_network(self, rec: StageRecorder) -> bool:
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
                self.configure_network(data, rec)
        self.consume_user_data(rec)
        return True

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
            network = importlib.import_module("metaboot.guest.network")
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
            log=logging.getLogger("metaboot.network"),
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
        scripts = list(user.scripts) + ([s for s in vendor.scripts] if vendor_enabled else [])
        vendor_names = {id(s) for s in vendor.scripts}
        written = self.store_scripts(idir, scripts, vendor_names)
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
        text = json.dumps(doc, indent=1, default=str)
        volatile.write(self.root, f"{idir}/{layout.CLOUD_CONFIG}", text, 0o600)
        rec.event("consume-user-data", time.perf_counter() - start, f"{len(user.parts)} part(s)")
        self.check_unknown_keys(rec)
        self.run_boothooks(idir, [s for s in scripts if s.kind == "boothook"], rec)

    def userdata_options(self, rec: StageRecorder) -> Any:
        from metaboot.guest import template, userdata

        settings = self.agent.cfg.get("user_data", {})
        assert self.instance is not None
        instance = self.instance

        def variables() -> dict[str, Any]:
            return instancedata.template_variables(instancedata.build(instance, self.root))

        render = template.make_renderer(variables, self.template_warnings)
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

    def store_scripts(self, idir: str, scripts: list[Any], vendor_ids: set[int]) -> list[str]:
        """Write scripts where the final-stage modules look for them; drop stale ones."""
        previous: list[str] = []
        try:
            old = json.loads(self.root.read_bytes(f"{idir}/{layout.CLOUD_CONFIG}"))
            previous = [p for p in old.get("scripts", []) if isinstance(p, str)]
        except (OSError, ValueError):
            pass
        written: list[str] = []
        for script in scripts:
            if script.kind == "boothook":
                continue
            if script.kind == "instance-part":
                sub = layout.VENDOR_SCRIPTS if id(script) in vendor_ids else layout.INSTANCE_SCRIPTS
                folder = f"{idir}/{sub}"
            else:
                folder = f"{layout.SCRIPTS_DIR}/{script.kind}"
            path = f"{folder}/{script.name}"
            volatile.write(self.root, path, script.payload, 0o700)
            written.append(path)
        for path in previous:
            if path not in written and path.startswith(idir):
                self.root.remove(path)
        return written

    def run_boothooks(self, idir: str, hooks: list[Any], rec: StageRecorder) -> None:
        """Boothooks run every boot, before the modules, inside the target: directly on the
        live system, through chroot in another root (never on the host against someone
        else's tree); when that is impossible they are reported as not run."""
        assert self.instance is not None
        refusal = command_refusal(self.root, self.effective_cfg())
        for hook in hooks:
            path = f"{idir}/{layout.BOOTHOOKS}/{hook.name}"
            volatile.write(self.root, path, hook.payload, 0o700)
            if refusal is not None:
                rec.recoverable(f"boothook {hook.name} ({hook.origin}) not run: {refusal}")
                continue
            argv = [path] if hook.payload.startswith(b"#!") else ["/bin/sh", path]
            if not self.root.is_live:
                argv = ["chroot", str(self.root.base), *argv]
            env = {"INSTANCE_ID": self.instance.instance_id}
            start = time.perf_counter()
            try:
                proc = self.root.run(argv, env=env, check=False, timeout=BOOTHOOK_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as err:
                rec.error(f"boothook {hook.name} ({hook.origin}): {err}")
                continue
            took = time.perf_counter() - start
            rec.event(f"boothook-{hook.name}", took, f"exit {proc.returncode}")
            if proc.returncode != 0:
                tail = proc.stderr.decode("utf-8", "replace").strip()[-300:]
                rec.error(f"boothook {hook.name} ({hook.origin}) exited {proc.returncode}: {tail}")

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

    def module_entries(self, stage: Stage) -> list[ModuleEntry]:
        key = MODULE_LIST_KEYS.get(stage)
        listed = self.agent.cfg.get(key) if key else None
        raw_list: list[Any] = (
            listed if isinstance(listed, list) else list(self.registry.defaults().get(stage, []))
        )
        entries = []
        for raw in raw_list:
            if isinstance(raw, str):
                entries.append(ModuleEntry(layout.semaphore_name(raw.strip()), None, raw))
            elif isinstance(raw, list) and raw and isinstance(raw[0], str):
                frequency = parse_frequency(raw[1]) if len(raw) > 1 else None
                entries.append(ModuleEntry(layout.semaphore_name(raw[0].strip()), frequency, raw))
        return entries

    def load_module(self, name: str) -> Module | Exception:
        if name not in self._modules_cache:
            try:
                self._modules_cache[name] = self.registry.load(name)
            except Exception as err:
                self._modules_cache[name] = err
        return self._modules_cache[name]

    def listed_modules(self) -> list[Module]:
        found = []
        for stage in STAGE_ORDER:
            for entry in self.module_entries(stage):
                module = self.load_module(entry.name)
                if isinstance(module, Module):
                    found.append(module)
        return found

    def check_unknown_keys(self, rec: StageRecorder) -> None:
        for key in validation.unknown_keys(self.cloud_config, self.listed_modules()):
            label, line = self.origins.get(key, ("user-data", None))
            at = f" (line {line})" if line else ""
            shown = repr(key) if isinstance(key, str) else str(key)
            message = f"{label}: key {shown}{at} is not supported by metaboot; ignored"
            log.warning("%s", message)
            rec.recoverable(message)

    def run_modules(self, stage: Stage, rec: StageRecorder) -> None:
        entries = self.module_entries(stage)
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
        module = self.load_module(entry.name)
        if not isinstance(module, Module):
            result.update(result="unavailable", reason=str(module) or type(module).__name__)
            log.info("module %s: not available (%s); skipped", entry.name, module)
            return result
        frequency = entry.frequency or module.frequency
        result["frequency"] = frequency.value
        if isinstance(entry.raw, list) and len(entry.raw) > 1 and entry.frequency is None:
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
            log=logging.getLogger(f"metaboot.modules.{module.name}"),
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
        for stage in STAGE_ORDER[1:]:
            for entry in self.module_entries(stage):
                module = self.load_module(entry.name)
                if isinstance(module, Module):
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
        data = rec.data
        parts: list[str] = []
        if stage == Stage.LOCAL:
            record = self.status.record
            if record.get("source"):
                new = "new instance" if record.get("new_instance") else "known instance"
                parts.append(
                    f"{record['source']} {record['subplatform']}: {record['instance_id']} ({new})"
                )
            else:
                parts.append("no local source")
            net = record.get("network")
            if net and net.get("renderer"):
                parts.append(f"network: {net['renderer']} ({len(net['written'])} file(s) written)")
            elif net and net.get("skipped"):
                parts.append(f"network: {net['skipped']}")
        elif stage == Stage.NETWORK and self.found_in == Stage.NETWORK:
            record = self.status.record
            new = "new instance" if record.get("new_instance") else "known instance"
            parts.append(
                f"{record['source']} {record['subplatform']}: {record['instance_id']} ({new})"
            )
        modules = data["modules"]
        if modules:
            counts: dict[str, int] = {}
            for item in modules:
                counts[item["result"]] = counts.get(item["result"], 0) + 1
            parts.append(
                f"{len(modules)} module(s): "
                + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            )
        parts.append(f"{data.get('duration', 0):.3f} s")
        self.say(f"metaboot {stage.value}: " + "; ".join(parts))
        for error in data["errors"]:
            self.say(f"metaboot {stage.value}: ERROR: {error}")
        for warning in data["recoverable_errors"]:
            self.say(f"metaboot {stage.value}: warning: {warning}")

    def print_final(self) -> None:
        record = self.status.record
        summary = summarize(record)
        changes = sum(
            len(m.get("changes", []))
            for s in record.get("stages", {}).values()
            for m in s.get("modules", [])
        )
        elapsed = time.time() - record.get("boot_started", time.time())
        self.say(
            f"metaboot finished: instance {record.get('instance_id')} from {record.get('source')}; "
            f"{changes} change(s), {len(summary.errors)} error(s), "
            f"{len(summary.recoverable)} warning(s); {elapsed:.2f} s since the first stage "
            f"— status: {summary.extended} (details: metaboot status --long)"
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


def command_refusal(root: Root, cfg: Mapping[str, Any]) -> str | None:
    """Why user commands cannot run in ``root`` (None: they can) — the policy the modules
    follow too (``root_commands: chroot|skip``)."""
    if root.is_live:
        return None
    if cfg.get("root_commands", "chroot") == "skip":
        return f"root_commands is 'skip' and {root.base} is not the live system"
    if os.geteuid() != 0:
        return f"{root.base} is not the live system and entering it with chroot needs root"
    shell = root.path("/bin/sh")
    if not (shell.exists() and os.access(shell, os.X_OK)):
        return f"{root.base} is not the live system and has no /bin/sh"
    if shutil.which("chroot") is None:
        return "chroot is not installed"
    return None


def make_console(root: Root, out: TextIO | None) -> Callable[[str], None]:
    """Lines shown once and never logged (RANDOM passwords): the system console on a live
    system, else the run's own output."""

    def write(line: str) -> None:
        if root.is_live:
            try:
                with open("/dev/console", "w", encoding="utf-8") as console:
                    console.write(line.rstrip("\n") + "\n")
                return
            except OSError:
                pass
        if out is not None:
            print(line.rstrip("\n"), file=out, flush=True)

    return write


def setup_logging(root: Root, debug: bool = False) -> logging.Handler | None:
    """Log to /var/log/metaboot.log inside the Root (0600: it may name users and files)."""
    logger = logging.getLogger("metaboot")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        root.makedirs("/var/log")
        path = root.path(layout.LOG_FILE)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.close(fd)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s")
    )
    logger.addHandler(handler)
    return handler


def run(options: Options, stages: list[Stage]) -> int:
    return Runner(options).run(stages)
