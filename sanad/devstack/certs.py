"""`make certs`: a development CA, service and example client certificates, and a JWT key pair.

    python -m sanad.devstack.certs [--out .certs] [--force]
    python -m sanad.devstack.certs client --role centre --subject nizwa-1 --center <id> [--force]

Without --out, the PKI is where `make run` looks for it: SANAD_DEVSTACK_CERTS, default .certs.

Service certificates (CN = service, OU = service) serve TLS and are the services' client
certificates towards each other; backend certificates (OU = backend) serve RabbitMQ and MongoDB.
Client certificates carry CN = subject, OU = role and a URI SAN `urn:sanad:agency:<code>` or
`urn:sanad:center:<id>` for the scope. Tokens for the same example identities are written to
tokens/<name>.jwt; they name the signing key's kid, which jwt-signing.jwks.json lists (the same
public key is in jwt-signing.pub.pem). Development only: keys are unencrypted.
"""

import argparse
import datetime
import ipaddress
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sanad.errors import Unauthenticated
from sanad.security.credentials import AGENCY_URI, CENTER_URI, issue_token, scoped
from sanad.security.identity import Identity, Role
from sanad.security.jwks import public_jwk

SERVICES = ("registry", "intake", "metrics", "workers")
# Server certificates of the brokers and databases the services reach over TLS, by the names the
# production overlay gives them (deploy/k8s/overlays/prod), and localhost for tests.
BACKENDS = {
    "rabbitmq": (
        "localhost",
        "sanad-rabbitmq.sanad.svc",
        "sanad-rabbitmq.sanad.svc.cluster.local",
        "*.sanad-rabbitmq-nodes.sanad.svc.cluster.local",
    ),
    "mongodb": ("localhost", "*.sanad-mongodb-svc.sanad.svc.cluster.local"),
}
EXAMPLE_CENTER = "example-centre"
TOKEN_TTL_S = 30 * 24 * 3600
EXAMPLES = {
    "admin": Identity("admin", Role.ADMIN),
    "ministry-mociip": Identity("mociip-licensing", Role.MINISTRY, agency_code="MOCIIP"),
    "ministry-rop": Identity("rop-systems", Role.MINISTRY, agency_code="ROP"),
    "centre": Identity("example-centre-desk", Role.CENTRE, center_id=EXAMPLE_CENTER),
    "operator": Identity("dakhiliyah-operator", Role.OPERATOR),
    "batch": Identity(f"batch-{EXAMPLE_CENTER}", Role.BATCH, center_id=EXAMPLE_CENTER),
}


@dataclass(frozen=True)
class Authority:
    """A CA's key and certificate."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_authority(name: str = "Sanad Mesh dev CA") -> Authority:
    """A self-signed CA valid for ten years."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


def issue(
    authority: Authority,
    subject: str,
    role: str,
    dns: Sequence[str] = (),
    uris: Sequence[str] = (),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a certificate (server and client use) signed by the authority."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    if dns:
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1")]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sanad Mesh"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                    x509.NameAttribute(NameOID.COMMON_NAME, subject),
                ]
            )
        )
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(authority.key, hashes.SHA256())


def scope_uris(identity: Identity) -> list[str]:
    """The URI SANs that carry an identity's scope."""
    if identity.agency_code:
        return [AGENCY_URI + identity.agency_code]
    if identity.center_id:
        return [CENTER_URI + identity.center_id]
    return []


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(path, pem)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner may read or write, from its first byte: made with mode 0600,
    never readable at the umask's mode meanwhile (a file there before is replaced)."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(data)


def write_pair(
    out: Path, name: str, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
) -> None:
    """<name>.pem and <name>.key."""
    (out / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(out / f"{name}.key", key)


def service_names(service: str) -> list[str]:
    """DNS names a service is reached by: locally, in compose and in Kubernetes."""
    return ["localhost", service, f"sanad-{service}", f"{service}.sanad.svc.cluster.local"]


def make_dev_pki(out: Path, issuer: str = "sanad-mesh", audience: str = "sanad-mesh") -> None:
    """Everything `make certs` writes, into out."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    authority = new_authority()
    write_pair(out, "ca", authority.key, authority.certificate)
    for service in SERVICES:
        write_pair(out, service, *issue(authority, service, "service", service_names(service)))
    for backend, names in BACKENDS.items():
        write_pair(out, backend, *issue(authority, f"sanad-{backend}", "backend", names))
    signing = ec.generate_private_key(ec.SECP256R1())
    _write_key(out / "jwt-signing.key", signing)
    write_verification_keys(out, signing.public_key())
    private = (out / "jwt-signing.key").read_bytes()
    kid = signing_kid(out)
    (out / "tokens").mkdir(mode=0o700, exist_ok=True)
    for name, identity in EXAMPLES.items():
        write_pair(
            out, name, *issue(authority, identity.subject, identity.role, (), scope_uris(identity))
        )
        token = issue_token(private, identity, issuer, audience, TOKEN_TTL_S, kid=kid)
        write_private(out / "tokens" / f"{name}.jwt", f"{token}\n".encode())


def restrict(out: Path) -> list[Path]:
    """Narrow a kept PKI's secrets to their owner, as make_dev_pki now writes them: the folders
    0700, keys and tokens 0600. Those written before keys were made 0600 were readable by every
    user of the machine (the admin's token among them). Returns what it narrowed."""
    narrowed = []
    wanted = {out: 0o700, out / "tokens": 0o700}
    wanted |= dict.fromkeys([*out.glob("*.key"), *(out / "tokens").glob("*.jwt")], 0o600)
    for path, mode in wanted.items():
        if path.exists() and path.stat().st_mode & 0o777 & ~mode:
            path.chmod(mode)
            narrowed.append(path)
    return narrowed


def write_verification_keys(out: Path, public: ec.EllipticCurvePublicKey) -> None:
    """The signing key's public half as jwt-signing.pub.pem and as a one-key JWKS,
    jwt-signing.jwks.json; either serves as SANAD_AUTH_JWT_PUBLIC_KEY_FILE."""
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (out / "jwt-signing.pub.pem").write_bytes(pem)
    document = {"keys": [public_jwk(public)]}
    (out / "jwt-signing.jwks.json").write_text(json.dumps(document, indent=2) + "\n")


def signing_kid(out: Path) -> str:
    """The kid of jwt-signing.key: its public key's RFC 7638 thumbprint."""
    key = serialization.load_pem_private_key((out / "jwt-signing.key").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("jwt-signing.key is not an EC key")
    return public_jwk(key.public_key())["kid"]


def load_authority(out: Path) -> Authority:
    """The CA that make_dev_pki wrote."""
    key = serialization.load_pem_private_key((out / "ca.key").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("ca.key is not an EC key")
    return Authority(key, x509.load_pem_x509_certificate((out / "ca.pem").read_bytes()))


# Where the dev PKI lives, for `make certs` and `make run` alike (sanad.devstack).
CERTS_KEY = "SANAD_DEVSTACK_CERTS"
# What a client's files are named: its subject or --name, without a path in it, and none of the
# PKI's own (a client named ca would replace the CA, one named intake intake's certificate).
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
PKI_FILES = frozenset({"ca", "jwt-signing", *SERVICES, *BACKENDS})


def certs_folder(env: Mapping[str, str]) -> Path:
    """Where the dev PKI lives (SANAD_DEVSTACK_CERTS, default .certs)."""
    return Path(env.get(CERTS_KEY, ".certs")).resolve()


def main(argv: Sequence[str] | None = None) -> int:
    """Create the dev PKI, or issue one more client certificate and token."""
    parser = argparse.ArgumentParser(prog="python -m sanad.devstack.certs")
    parser.add_argument("--out", type=Path, default=certs_folder(os.environ))
    parser.add_argument("--force", action="store_true", help="replace an existing dev PKI")
    commands = parser.add_subparsers(dest="command")
    client = commands.add_parser("client", help="issue a client certificate and token")
    client.add_argument("--role", required=True, choices=[r.value for r in Role])
    client.add_argument("--subject", required=True)
    client.add_argument("--agency", default="")
    client.add_argument("--center", default="")
    client.add_argument("--name", help="file name (default: the subject)")
    client.add_argument(
        "--force",
        action="store_true",
        dest="replace_client",
        help="replace the certificate, key and token of a client already issued under the name",
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    try:
        return _run(args, out, client)
    except OSError as error:
        print(f"certs: {error.strerror or error}: {error.filename or out}", file=sys.stderr)
        return 1


def _issued(out: Path, name: str) -> list[str]:
    """The files of a client already issued under name, as named under out: the example
    admin's among them, which sanadctl.env uses (another role under its name demoted it)."""
    files = [f"{name}.pem", f"{name}.key", f"tokens/{name}.jwt"]
    return [file for file in files if (out / file).exists()]


def _run(args: argparse.Namespace, out: Path, client: argparse.ArgumentParser) -> int:
    if args.command == "client":
        try:  # refused here as the services would refuse it: a role without its scope
            identity = scoped(args.subject, args.role, args.agency, args.center)
        except Unauthenticated as error:
            client.error(f"{error} (--subject, --agency for a ministry, --center for a centre)")
        name = args.name or args.subject
        if not FILE_NAME.fullmatch(name):
            client.error(f"{name!r} is not a file name: give --name (letters, digits, . _ -)")
        if name in PKI_FILES:
            client.error(f"{name!r} names a file of the dev PKI itself: give another --name")
        if not (out / "ca.pem").exists():
            print(f"certs: no dev CA in {out}/: run `make certs` first", file=sys.stderr)
            return 1
        if not (args.replace_client or args.force) and (there := _issued(out, name)):
            print(
                f"certs: {out}/ has {', '.join(there)} already: give another --name, or --force"
                " after `client` to replace them",
                file=sys.stderr,
            )
            return 1
        if missing := [key for key in ("ca.key", "jwt-signing.key") if not (out / key).exists()]:
            # `make certs` keeps a CA it finds, so it cannot give the missing key back.
            print(
                f"certs: {out}/ has a dev CA without {' and '.join(missing)}, so it can issue no"
                f" client: `python -m sanad.devstack.certs --out {out} --force` makes a new dev"
                " PKI, replacing every certificate and token there",
                file=sys.stderr,
            )
            return 1
        write_pair(
            out,
            name,
            *issue(load_authority(out), identity.subject, identity.role, (), scope_uris(identity)),
        )
        token = issue_token(
            (out / "jwt-signing.key").read_bytes(),
            identity,
            "sanad-mesh",
            "sanad-mesh",
            TOKEN_TTL_S,
            kid=signing_kid(out),
        )
        write_private(out / "tokens" / f"{name}.jwt", f"{token}\n".encode())
        print(f"certs: wrote {out}/{name}.pem, {name}.key and tokens/{name}.jwt")
        return 0
    if (out / "ca.pem").exists() and not args.force:
        print(f"certs: {out}/ca.pem exists; keeping it (use --force to replace)")
        if narrowed := restrict(out):
            things = "key, token or folder" if len(narrowed) == 1 else "keys, tokens and folders"
            print(f"certs: made {len(narrowed)} {things} under {out}/ owner-only")
        return 0
    make_dev_pki(out)
    print(f"certs: wrote a dev CA, service and client certificates and tokens to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
