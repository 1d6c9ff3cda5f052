"""Generate the llenergymeasure 0.7.0 study corpus with llenergymeasure's own code.

    python tests/lem_studies/make_corpus.py            # throwaway venv, pip install, generate
    python tests/lem_studies/make_corpus.py --check DIR  # what llenergymeasure says of one study folder

Not a runtime dependency: the script makes a virtual environment in a temporary
folder, installs ``llenergymeasure==0.7.0`` from PyPI into it and runs itself
there. Inside, every manifest is written by llenergymeasure's ``ManifestWriter``
(its ``mark_*`` methods, its ``_write``), tracebacks by its
``persist_failure_traceback``, and ``expectations.json`` records what its own
``find_resumable_study``, ``load_resume_state`` and ``StudyManifest`` say about
each file, plus the exact bytes its ``mark_interrupted()`` writes for the study
a SIGKILLed ``llem run`` left ``running``. The outputs are committed; the tests
compare expwatch against them without llenergymeasure installed.

Study-level ``failed`` is written by no 0.7.0 code path we found (only entries
fail); the ``failed`` study is that status set on a writer's manifest, which
llenergymeasure's model accepts and its resume lookup picks up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
VERSION = "0.7.0"


def _in_venv_with_llenergymeasure() -> bool:
    try:
        from llenergymeasure._version import __version__
    except ImportError:
        return False
    return __version__ == VERSION


def _reexec_in_throwaway_venv(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="lem-corpus-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"llenergymeasure=={VERSION}"], check=True)
        return subprocess.run([str(python), str(Path(__file__).resolve()), *argv]).returncode


# -- inside llenergymeasure's environment ------------------------------------------------------
def _writer(study_dir: Path, name: str, hashes: list[str], cycles: int = 1):
    from datetime import datetime, timezone

    from llenergymeasure.study.manifest import ExperimentManifestEntry, ManifestWriter, StudyManifest

    entries = [
        ExperimentManifestEntry(config_hash=h, config_summary=f"gpt2 / transformers / batch_size={2 ** i}",
                                cycle=c, status="pending")
        for i, h in enumerate(hashes) for c in range(1, cycles + 1)
    ]
    manifest = StudyManifest(
        study_name=name, study_design_hash=hashlib.sha256(name.encode()).hexdigest()[:16], llenergymeasure_version=VERSION,
        started_at=datetime.now(timezone.utc), total_experiments=len(entries), pending=len(entries),
        experiments=entries,
    )
    study_dir.mkdir(parents=True)
    writer = ManifestWriter.from_existing(study_dir, manifest)
    writer._write()
    artefacts = study_dir / "_study-artefacts"
    artefacts.mkdir()
    (artefacts / "study_config.yaml").write_text(f"study_name: {name}\nmodel: gpt2\n")
    (artefacts / "system.json").write_text(json.dumps({"gpu": "simulated", "host": "corpus"}, indent=2))
    (study_dir / "equivalence_groups.json").write_text(json.dumps({
        "study_id": manifest.study_design_hash, "study_name": name, "dedup_mode": "off",
        "validated_rules_version": None, "groups": [], "observed_collision_groups": []}, indent=2))
    (study_dir / "runtime_observations.jsonl").write_text('{"experiment": 0, "warnings": []}\n')
    return writer


def _complete(writer, h: str, cycle: int = 1, energy: float = 120.5) -> None:
    writer.mark_running(h, cycle)
    writer.mark_completed(h, cycle, f"{h}_c{cycle}/result.json", elapsed_seconds=42.0, inference_seconds=30.5,
                          energy_joules=energy, adj_energy_joules=energy - 20, throughput_tok_s=512.25,
                          energy_per_token_mj=1.75)


def _fail(writer, study_dir: Path, h: str, cycle: int = 1) -> None:
    from llenergymeasure.study.container_lifecycle import persist_failure_traceback

    writer.mark_running(h, cycle)
    result: dict = {}
    persist_failure_traceback(study_dir, h, cycle, (
        "Traceback (most recent call last):\n"
        '  File "llenergymeasure/harness/run.py", line 88, in run\n'
        "    model = load(config)\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"), result)
    writer.mark_failed(h, cycle, "OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB",
                       log_file=result.get("log_file"))


def _generate(results: Path) -> dict:
    import time

    from llenergymeasure.study.manifest import ManifestWriter, StudyManifest
    from llenergymeasure.study.resume import find_resumable_study, load_resume_state
    from llenergymeasure.utils.io import load_json

    hashes = ["a1b2c3d4e5f60718", "b2c3d4e5f6071829", "c3d4e5f60718293a"]
    made: list[Path] = []

    def study(name: str):
        time.sleep(1.1)  # folder names and started_at order by the second, as llem's own do
        from llenergymeasure.study.manifest import study_dir_name

        path = results / study_dir_name(name)
        made.append(path)
        return path, _writer(path, name, hashes)

    d, w = study("completed-sweep")
    for h in hashes:
        _complete(w, h)
    w.mark_study_completed()

    d, w = study("failed-study")
    _complete(w, hashes[0])
    _fail(w, d, hashes[1])
    w.manifest = w.manifest.model_copy(update={"status": "failed"})
    w._write()

    d, w = study("breaker-study")
    _fail(w, d, hashes[0])
    _fail(w, d, hashes[1])
    w.mark_skipped(hashes[2], 1, "circuit breaker open after 2 consecutive failures")
    w.mark_study_circuit_breaker()

    d, w = study("timeout-study")
    _complete(w, hashes[0])
    w.mark_skipped(hashes[1], 1, "study wall-clock timeout exceeded")
    w.mark_skipped(hashes[2], 1, "study wall-clock timeout exceeded")
    w.mark_study_timed_out()

    d, w = study("interrupted-study")
    _complete(w, hashes[0])
    w.mark_running(hashes[1], 1)
    w.mark_interrupted()

    d, w = study("killed-study")
    _complete(w, hashes[0])
    w.mark_running(hashes[1], 1)  # then SIGKILL: nothing else is ever written

    expectations: dict = {"llenergymeasure_version": VERSION, "studies": {}}
    for path in made:
        data = load_json(path / "manifest.json")
        manifest = StudyManifest.model_validate(data)
        try:
            _, skip = load_resume_state(path)
            loads = True
        except Exception:
            skip, loads = set(), False
        expectations["studies"][path.name] = {
            "study_name": manifest.study_name,
            "status": manifest.status,
            "entries": [e.status for e in manifest.experiments],
            "counts": {k: getattr(manifest, k) for k in ("completed", "failed", "pending", "skipped", "interrupted")},
            "energy_joules": sum(e.energy_joules for e in manifest.experiments if e.energy_joules is not None),
            "log_files": [e.log_file for e in manifest.experiments if e.log_file],
            "load_resume_state": loads,
            "skip_set_size": len(skip),
        }
    found = find_resumable_study(results)
    expectations["find_resumable_study"] = found.name if found else None

    killed = made[-1]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "results" / killed.name
        shutil.copytree(killed, copy)
        writer = ManifestWriter.from_existing(copy, StudyManifest.model_validate(load_json(copy / "manifest.json")))
        writer.mark_interrupted()
        marked = (copy / "manifest.json").read_text()
        after = find_resumable_study(copy.parent)
    (CORPUS / "killed-study.mark_interrupted.json").write_text(marked)
    expectations["killed_study"] = killed.name
    expectations["find_resumable_study_after_mark"] = after.name if after else None
    return expectations


def check(study_dir: Path) -> dict:
    """llenergymeasure's own reading of one study folder (for a test that has the environment)."""
    from llenergymeasure.study.resume import find_resumable_study, load_resume_state

    _, skip = load_resume_state(study_dir)
    found = find_resumable_study(study_dir.parent)
    return {"skip_set_size": len(skip), "find_resumable_study": found.name if found else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, help="print llenergymeasure's reading of one study folder as JSON")
    args = parser.parse_args(argv)
    if not _in_venv_with_llenergymeasure():
        if os.environ.get("LEM_CORPUS_NO_VENV"):
            print(f"llenergymeasure=={VERSION} is not importable here", file=sys.stderr)
            return 1
        return _reexec_in_throwaway_venv(sys.argv[1:] if argv is None else argv)
    if args.check:
        print(json.dumps(check(args.check)))
        return 0
    shutil.rmtree(CORPUS, ignore_errors=True)
    results = CORPUS / "results"
    results.mkdir(parents=True)
    expectations = _generate(results)
    (CORPUS / "expectations.json").write_text(json.dumps(expectations, indent=2) + "\n")
    print(f"wrote {len(expectations['studies'])} studies under {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
