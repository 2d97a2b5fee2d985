"""Trust on the command line: checking signed reports offline, the signing key, backups.

    gemid verify REPORT.json [--photo PHOTO] [--key PUBLIC.pem]
    gemid keys rotate-signing
    (gemid backup and gemid restore: gemid.serve.backup, which uses the helpers here)

`verify` needs no service: it checks the signatures (gemid.signing) with the public key given, or with the
public keys of the store named by the GEMID_* settings. The others work on that store, as `gemid serve` does.
Exit codes: 0 valid / done; 1 the report does not verify; 2 the command could not run (no key, no store).
`keys` is a command group shared with the accounts' API-key commands: whichever module registers first makes
it, the other adds to it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from gemid.serve.console import Refused, keys_from_file, open_existing_store, settings_for


def _group(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    """The sub-command group `gemid NAME`, made here unless another module registered it first."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        parser.set_defaults(func=lambda _args, p=parser: p.print_help() or 2)
        return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def register(subparsers: argparse._SubParsersAction) -> None:
    v = subparsers.add_parser(
        "verify", help="check a signed report offline (exit 0 valid, 1 changed)",
        description="Check the signatures of a report's revisions (GET /v1/reports/{id}, or every revision from "
                    "GET /v1/reports/{id}/revisions, which checks the chain too) and, with --photo, that the "
                    "report was made from that photo. Exit 0: valid; 1: any signed byte or the photo changed.")
    v.add_argument("report", type=Path, metavar="REPORT.json", help="the report JSON ('-': standard input)")
    v.add_argument("--photo", type=Path, help="the photo the report is about: its SHA-256 must be the signed one")
    v.add_argument("--key", type=Path, metavar="PUBLIC.pem",
                   help="the service's public key (PEM, or the JSON of GET /v1/keys); default: the public keys "
                        "of the store named by the GEMID_* settings")
    v.add_argument("--data-dir", help="the store to take the public keys from (GEMID_DATA_DIR)")
    v.set_defaults(func=_verify)

    keys = _group(subparsers, "keys", "the service's keys: API keys and the report signing key")
    r = keys.add_parser("rotate-signing", help="retire the signing key and make a new one",
                        description="Make a new signing key (in GEMID_SIGNING_KEY, or signing-key.pem in the data "
                                    "folder) and retire the current one. Reports signed before still verify: "
                                    "GET /v1/keys keeps listing the retired key. A running service signs with the "
                                    "new key file from its next report; replicas on other machines need the new "
                                    "file copied to them.")
    r.add_argument("--data-dir", help="the store (GEMID_DATA_DIR)")
    r.set_defaults(func=_rotate)


def _verify(args: argparse.Namespace) -> int:
    from gemid import signing

    try:
        if args.key is not None:
            keys, retired = keys_from_file(args.key)
            source = f"the key file {args.key}"
        else:
            from gemid.serve.keys import verification_keys

            settings = settings_for(args)
            source = f"this machine's store ({settings.data_dir})"
            store = open_existing_store(settings)
            try:
                keys, retired = verification_keys(store.engine)
            except Exception as exc:
                raise Refused(f"cannot read the store's public keys: {exc}") from exc
            finally:
                store.close()
            if not keys:
                raise Refused("the store has no signing keys (it never signed a report); pass --key PUBLIC.pem")
        photo_sha = None
        if args.photo is not None:
            try:
                photo_sha = hashlib.sha256(args.photo.read_bytes()).hexdigest()
            except OSError as exc:
                raise Refused(f"cannot read the photo {args.photo}: {exc}") from exc
        try:
            raw = sys.stdin.buffer.read() if str(args.report) == "-" else args.report.read_bytes()
        except OSError as exc:
            raise Refused(f"cannot read {args.report}: {exc}") from exc
    except Refused as exc:
        print(f"gemid verify: {exc}", file=sys.stderr)
        return 2
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        print(f"NOT VALID: {args.report} is not a readable report ({exc}); it is not what the service issued")
        return 1
    error = document.get("error") if isinstance(document, dict) and set(document) == {"error"} else None
    if isinstance(error, dict):
        # the service's error answer saved in place of the report (a fetch without the key, an outside try):
        # nothing to verify, and "not what the service issued" would read like tampering
        print(f"gemid verify: {args.report} holds the service's error answer, not a report: "
              f"{error.get('code')}: {error.get('message')}" + (
                  " (fetch it with -H 'Authorization: Bearer KEY')" if error.get("code") == "unauthorised" else ""),
              file=sys.stderr)
        return 2
    try:
        revisions = signing.revisions_of(document)
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"NOT VALID: {args.report} is not a readable report ({exc}); it is not what the service issued")
        return 1
    signers = {k for r in revisions if isinstance(r.get("signature"), dict)
               and isinstance(k := r["signature"].get("key_id"), str)}
    unknown = sorted(signers - set(keys))
    if signers and unknown and not signers & set(keys):
        # no revision by a key we hold says nothing either way: "NOT VALID" would read like a forgery (an outside
        # try verified a genuine report against another engineer's default store and got just that). A revision
        # by an unknown key beside ones by a key we hold stays NOT VALID: one service signed them all
        print(f"gemid verify: cannot check {args.report}: it is signed by key {', '.join(unknown)}, which "
              f"{source} does not hold (it holds {', '.join(sorted(keys))}). Verify it with the issuing "
              "service's public keys: curl -s https://SERVICE/v1/keys > keys.json; gemid verify REPORT --key "
              "keys.json", file=sys.stderr)
        return 2
    verdict = signing.verify_revisions(revisions, keys, photo_sha256=photo_sha, retired=retired)
    who = f"report {verdict.report_id}"
    if verdict.ok:
        revs = verdict.checked
        span = f"revision {revs[0]}" if len(revs) == 1 else f"revisions {revs[0]}-{revs[-1]} (chain intact)"
        photo = ", photo matches" if photo_sha else ""
        print(f"valid: {who}, {span}, signed by key {', '.join(sorted(verdict.key_ids))}{photo}")
        return 0
    print(f"NOT VALID: {who}")
    for problem in verdict.problems:
        print(f"  {problem}")
    return 1


def _rotate(args: argparse.Namespace) -> int:
    from gemid.serve.accounts_cli import cli_audit
    from gemid.serve.keys import SigningKeyError, rotate

    try:
        settings = settings_for(args)
        store = open_existing_store(settings, upgrade=True)
    except Refused as exc:
        print(f"gemid keys rotate-signing: {exc}", file=sys.stderr)
        return 2
    try:
        retired, new = rotate(settings, store.engine)
        cli_audit(store.engine, "signing_key_rotated", f"retired {', '.join(retired) or '-'}; new {new}")
    except SigningKeyError as exc:
        print(f"gemid keys rotate-signing: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"retired: {', '.join(retired) or '(none)'}")
    print(f"new signing key {new} in {settings.signing_key_path}")
    return 0
