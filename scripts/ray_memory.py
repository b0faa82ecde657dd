"""Where the memory of `serve --placement ray` goes: ingest a 300k x 50-d set into 4 shards and print each
process's RSS, PSS and USS (psutil) before and after, grouped by process name (issue 18's memory probe).

    python scripts/ray_memory.py
"""

import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import serve_process  # noqa: E402
from simsearch import Client  # noqa: E402
from simsearch.datasets import synthetic_gmm  # noqa: E402
def snap(pid):
    out=[]
    p=psutil.Process(pid)
    for q in [p,*p.children(recursive=True)]:
        try:
            m=q.memory_full_info(); out.append((q.name()[:28], m.rss>>20, m.pss>>20, m.uss>>20, getattr(m,"shared",0)>>20))
        except psutil.NoSuchProcess: pass
    return out
if __name__=="__main__":
    ds=synthetic_gmm(300_000, 50, queries=100)
    key="ss_"+secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as d, serve_process(Path(d)/"data", "--placement", "ray", key=key) as run:
        with Client(run.address, api_key=key) as c:
            c.create_collection("b", 50, shards=4); c.count("b")
            a=snap(run.proc.pid)
            c.upsert("b", np.arange(len(ds.train)), ds.train, progress=False); c.build_index("b")
            time.sleep(5)
            b=snap(run.proc.pid)
        for name in sorted(set(x[0] for x in a+b)):
            ra=[x for x in a if x[0]==name]; rb=[x for x in b if x[0]==name]
            print(f"{name:30s} before rss/pss {sum(x[1] for x in ra)}/{sum(x[2] for x in ra)}  after rss/pss/uss {sum(x[1] for x in rb)}/{sum(x[2] for x in rb)}/{sum(x[3] for x in rb)}")
        print("tree rss growth MiB", sum(x[1] for x in b)-sum(x[1] for x in a), "pss growth", sum(x[2] for x in b)-sum(x[2] for x in a))
