#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, drawn from examples/ (no hand-copied files):
scenario_loader: each example scenario; duration / net_address / expression: the durations,
addresses and `expect:` lines written in them; agent_requests: the requests each example's run
sends (written by agent_request_seeds). Usage: make_seeds.py EXAMPLES_DIR OUT_DIR SEEDS_TOOL"""
import hashlib
import pathlib
import re
import subprocess
import sys

examples, out, tool = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
files = sorted(examples.glob("*.yaml"))
corpora = {name: set() for name in ("scenario_loader", "duration", "net_address", "expression")}

DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:ms|us|s)\b")
ADDRESS = re.compile(r"\[[0-9a-fA-F:]+\]:\d+|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
for f in files:
    text = f.read_text()
    corpora["scenario_loader"].add(text)
    corpora["duration"].update(DURATION.findall(text))
    corpora["net_address"].update(ADDRESS.findall(text))
    # Listener ports as the loopback targets a flood names ("127.0.0.1:8080", "[::1]:8080").
    for port in re.findall(r"\bport: (\d+)", text):
        corpora["net_address"].update({f"127.0.0.1:{port}", f"[::1]:{port}"})
    in_expect = False
    for line in text.splitlines():
        if re.match(r"^expect:\s*$", line):
            in_expect = True
            continue
        if in_expect:
            m = re.match(r"^\s+-\s+(.*)$", line)
            if m:
                corpora["expression"].add(m.group(1).strip().strip("'\""))
            elif line and not line.startswith((" ", "#")):
                in_expect = False

for name, items in corpora.items():
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for item in items:
        data = item.encode()
        (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{name}: {len(items)} seeds")

requests = out / "agent_requests"
requests.mkdir(parents=True, exist_ok=True)
subprocess.run([tool, str(requests)] + [str(f) for f in files], check=True)
