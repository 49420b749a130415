"""Writes tests/vectors/stats_envelopes.json: what the Rust `fedq stats`
sends for a few queries, so that test_envelope.py can check this package
byte for byte without the Rust binaries.

    FEDQ_BIN_DIR=target/debug python coordinator/python/tests/make_vectors.py

The key in the file is a throwaway made by `fedq federation init` for this
purpose only; it signs nothing else.
"""

import json
import subprocess
import tempfile
from pathlib import Path

from federation import binary
from rust_capture import capture_stats_request, cli_args

from fedq.config import ClientConfig

VECTORS = Path(__file__).resolve().parent / "vectors" / "stats_envelopes.json"

#: Keyword arguments of Client.stats: exact and inexact doubles, rho,
#: filters, "a, b" group-by, a dry run, quotes, backslashes and non-ASCII
#: text, a legal basis with spaces around it (the envelope trims it).
CASES = [
    {"table": "incidents", "measure": "count", "purpose": "research", "epsilon": 1.0},
    {"table": "incidents", "measure": "histogram:severity", "purpose": "research", "group_by": "category",
     "filters": ["sector=finance"], "epsilon": 0.1, "case": "C-1", "dry_run": True},
    {"table": "incidents", "measure": "mean:loss_eur", "purpose": "threat-report", "group_by": "sector, month",
     "filters": ["date>=2025-01-01", "severity>=3"], "rho": 0.05,
     "legal_basis": "  art. 6 \u00a7 2 \u2014 \u00dcberpr\u00fcfung  "},
    {"table": "incidents", "measure": "sum:loss_eur", "purpose": 'say "hi" \\ back', "epsilon": 0.025,
     "case": "\u00fcn\u00efcode/\u6848\u4ef6"},
]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        fed = Path(scratch) / "fed"
        subprocess.run([str(binary("fedq")), "federation", "init", "--dir", str(fed), "--nodes", "fr,de"],
                       check=True, capture_output=True)
        config = ClientConfig.load(fed / "requesters" / "rosa" / "client.toml")
        cases = []
        for case in CASES:
            sent = capture_stats_request(binary("fedq"), fed, "rosa", cli_args(**case))
            context = sent.context
            cases.append({
                "stats": case,
                "query_wire": sent.query.SerializeToString().hex(),
                "context": {"purpose": context.purpose, "case_reference": context.case_reference,
                            "legal_basis": context.legal_basis},
                "envelope": context.envelope.envelope.decode("utf-8"),
                "signature": context.envelope.signature.hex(),
            })
        vectors = {
            "made_by": "tests/make_vectors.py with the Rust fedq",
            "requester": {"id": config.requester.id, "agency": config.requester.agency,
                          "role": config.requester.role, "public_key": config.requester.public_key},
            "signing_key": config.signing_key.read_text().strip(),
            "legal_basis": config.legal_basis,
            "nodes": list(config.nodes),
            "cases": cases,
        }
    VECTORS.parent.mkdir(exist_ok=True)
    VECTORS.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {VECTORS}")


if __name__ == "__main__":
    main()
