"""How the results store and the report scale with the number of records.

Writes ``N`` records (``results/default.jsonl``'s, repeated under new run ids, raw samples included, as
a results file of many sweeps and reruns would hold them) and times, in fresh processes:
reading and validating the file, building the landscape frame, and ``compbench report`` with every format.

    python results/store-scale/store_scale.py 1000 10000 100000 > results/store-scale/store-scale.txt
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "default.jsonl"


def write_records(path: Path, count: int) -> int:
    """``count`` records: the source's, repeated, each repetition a run of its own; returns the bytes written."""
    lines = SOURCE.read_text(encoding="utf-8").splitlines()
    with path.open("w", encoding="utf-8") as out:
        written = 0
        while written < count:
            run = uuid.uuid4().hex[:12]
            for line in lines[: count - written]:
                record = json.loads(line)
                record["run_id"] = run
                if record.get("job"):
                    record["job"] = f"{record['job']}-{run}"
                out.write(json.dumps(record, sort_keys=True) + "\n")
            written += min(len(lines), count - written)
    return path.stat().st_size


STEP = """
import resource, sys, time
{imports}
start = time.perf_counter()
{body}
print(f"{{time.perf_counter() - start:.2f}} {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}}")
"""
# (imports, not timed: the same for any number of records), the work timed
STEPS = {
    "read and validate (streamed)": ("from compbench.store import iter_records",
                                     "for _ in iter_records(sys.argv[1]):\n    pass"),
    "landscape frame": ("from compbench.report import landscape_frame, load_landscape",
                        "landscape_frame(load_landscape([sys.argv[1]]))"),
    "compbench report (all formats)": ("from compbench.cli.main import main",
                                       "assert main(['report', sys.argv[1], '--out', sys.argv[2]]) == 0"),
}


def main(counts: list[int]) -> None:
    print("records  file MB  step                            seconds  peak MB (whole process)")
    print("(seconds after the imports; peak resident memory of the process, imports included)")
    for count in counts:
        with tempfile.TemporaryDirectory() as folder:
            results = Path(folder) / "results.jsonl"
            size = write_records(results, count)
            for name, (imports, body) in STEPS.items():
                done = subprocess.run([sys.executable, "-c", STEP.format(imports=imports, body=body), str(results),
                                       str(Path(folder) / f"report-{count}")],
                                      capture_output=True, text=True, check=True)
                seconds, peak = done.stdout.split()[-2:]
                print(f"{count:>7}  {size / 1e6:7.0f}  {name:<30}  {float(seconds):7.2f}  {float(peak):7.0f}",
                      flush=True)


if __name__ == "__main__":
    main([int(n) for n in sys.argv[1:]] or [1000, 10000, 100000])
