"""Test certificates made at test time with the openssl CLI, in a temporary folder.

A CA signs the server certificates (ECDSA P-256 or RSA 2048, with DNS subjectAltNames); a second
CA signs client certificates for mutual TLS. `days=-1` makes a certificate that expired
yesterday (notAfter before notBefore, which OpenSSL accepts).
"""
import pathlib
import subprocess
import tempfile


def _run(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Certs:
    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="fulcrum-certs-")
        self.dir = pathlib.Path(self._tmp.name)
        self.ca = self._ca("ca", "Fulcrum Test CA")
        self.client_ca = self._ca("client-ca", "Fulcrum Test Client CA")

    def cleanup(self):
        self._tmp.cleanup()

    def path(self, name):
        return self.dir / name

    def _key(self, name, kind):
        if kind == "rsa":
            _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", f"{name}.key", cwd=self.dir)
        else:
            _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", f"{name}.key", cwd=self.dir)
        return self.dir / f"{name}.key"

    def _ca(self, name, cn):
        self._key(name, "ec")
        _run("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem", "-days", "30",
             "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        return self.dir / f"{name}.pem"

    def server(self, name, names, kind="ec", days=30, signer="ca"):
        """A server certificate for DNS `names`; returns (cert path, key path)."""
        self._key(name, kind)
        _run("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={names[0]}", cwd=self.dir)
        ext = self.dir / f"{name}.ext"
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
                       "extendedKeyUsage=serverAuth\n")
        _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{signer}.pem", "-CAkey",
             f"{signer}.key", "-CAcreateserial", "-days", str(days), "-out", f"{name}.pem",
             "-extfile", ext.name, cwd=self.dir)
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"

    def client(self, name, subject):
        """A client certificate signed by the client CA; returns (cert path, key path)."""
        self._key(name, "ec")
        _run("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
             cwd=self.dir)
        ext = self.dir / f"{name}.ext"
        ext.write_text("extendedKeyUsage=clientAuth\n")
        _run("x509", "-req", "-in", f"{name}.csr", "-CA", "client-ca.pem", "-CAkey",
             "client-ca.key", "-CAcreateserial", "-days", "30", "-out", f"{name}.pem",
             "-extfile", ext.name, cwd=self.dir)
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"
