#!/usr/bin/env python3
"""Parses a Prometheus textfile with prometheus_client's own exposition
parser (the reference implementation's Python client) and prints what it
read as JSON: {"families": {name: {"type": t, "help": h}}, "samples":
[[name, labels, value], ...]}. A file it cannot parse exits non-zero.

    python3 tests/helpers/parse_prom.py FILE
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
families = {}
samples = []
for family in text_string_to_metric_families(text):
    families[family.name] = {"type": family.type, "help": family.documentation}
    for sample in family.samples:
        samples.append([sample.name, dict(sample.labels), sample.value])
json.dump({"families": families, "samples": samples}, sys.stdout)
