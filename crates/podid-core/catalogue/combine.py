#!/usr/bin/env python3
"""Combines the policy files of this directory into catalogue.json, which podid-core embeds.

Run after adding or updating a policy file: python3 crates/podid-core/catalogue/combine.py
A test (catalogue::tests::catalogue_json_matches_the_policy_files) fails when they drift apart.
"""
import json
import pathlib

here = pathlib.Path(__file__).parent
entries = []
for path in sorted(here.glob("*.json")):
    if path.name == "catalogue.json":
        continue
    entries.append(json.loads(path.read_text()))
entries.sort(key=lambda e: e["Arn"])
(here / "catalogue.json").write_text(json.dumps(entries, indent=1) + "\n")
print(f"catalogue.json: {len(entries)} policies")
