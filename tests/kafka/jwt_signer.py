"""JWTs for the tests: RS256 and ES256 keys made with python3-cryptography, their JWKs, and
tokens signed with them (RFC 7515 compact form). Used by the HTTP gateway's and the Kafka
listeners' (SASL OAUTHBEARER) authentication tests."""

import base64
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return n.to_bytes(size, "big")


class Signer:
    """A key that signs JWTs, and its JWK."""

    def __init__(self, alg, kid):
        self.alg = alg
        self.kid = kid
        if alg == "RS256":
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pub = self.key.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                        "n": b64url(int_bytes(pub.n)), "e": b64url(int_bytes(pub.e))}
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())
            pub = self.key.public_key().public_numbers()
            self.jwk = {"kty": "EC", "kid": kid, "crv": "P-256",
                        "x": b64url(int_bytes(pub.x, 32)), "y": b64url(int_bytes(pub.y, 32))}

    def token(self, claims, header=None):
        header = header or {"alg": self.alg, "typ": "JWT", "kid": self.kid}
        signed = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        if self.alg == "RS256":
            sig = self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self.key.sign(signed, ec.ECDSA(hashes.SHA256())))
            sig = int_bytes(r, 32) + int_bytes(s, 32)
        return signed.decode() + "." + b64url(sig)


def write_jwks(path, *signers):
    """Writes the JWKS of `signers` to `path`."""
    with open(path, "w") as f:
        json.dump({"keys": [s.jwk for s in signers]}, f)
