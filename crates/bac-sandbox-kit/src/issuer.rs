//! A token issuer as identity providers run one for the requests they send: an RSA signing
//! key published as a JWKS (each key may carry `endorsements`, as the Bot Framework's do),
//! OpenID metadata naming it, and RS256 JWTs signed with it. Microsoft's Bot Framework signs
//! the activities it posts to a bot this way; Google signs a Chat app's events likewise. The
//! key is the sandbox's own, fixed (`keys/issuer.pem`): it vouches for nothing outside a test.
use axum::{extract::State, routing::get, Json, Router};
use serde_json::{json, Value};

/// The sandbox's signing key (a test key; never a secret of anything real).
const PRIVATE_PEM: &str = include_str!("../keys/issuer.pem");
/// Its modulus, base64url (the JWKS's `n`).
const MODULUS: &str = include_str!("../keys/issuer.n");

/// One issuer: who it says it is, the key id and what the key is endorsed for.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub kid: String,
    pub endorsements: Vec<String>,
}

/// How a test wants a token made: as the issuer makes it, or wrong in one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    None,
    /// Signed with another key (the header names the issuer's key id).
    OtherKey,
    /// Expired an hour ago.
    Expired,
    /// For another audience.
    OtherAudience,
}

impl Forgery {
    pub fn parse(s: &str) -> Forgery {
        match s {
            "forged" | "other_key" => Forgery::OtherKey,
            "expired" => Forgery::Expired,
            "other_audience" => Forgery::OtherAudience,
            _ => Forgery::None,
        }
    }
}

impl Issuer {
    /// The JWKS document.
    pub fn jwks(&self) -> Value {
        let mut key = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                             "n": MODULUS.trim(), "e": "AQAB"});
        if !self.endorsements.is_empty() {
            key["endorsements"] = json!(self.endorsements);
        }
        json!({ "keys": [key] })
    }

    /// OpenID metadata whose `jwks_uri` is `jwks_url`.
    pub fn openid(&self, jwks_url: &str) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        })
    }

    /// An RS256 JWT for `audience` with `claims` added, valid for an hour from `now`.
    pub fn token(
        &self,
        audience: &str,
        claims: Value,
        now: i64,
        forgery: Forgery,
    ) -> Result<String, String> {
        let (iat, exp) = match forgery {
            Forgery::Expired => (now - 7200, now - 3600),
            _ => (now - 5, now + 3600),
        };
        let mut body = json!({
            "iss": self.issuer,
            "aud": if forgery == Forgery::OtherAudience { "someone-else" } else { audience },
            "iat": iat, "nbf": iat, "exp": exp,
        });
        if let (Value::Object(b), Value::Object(extra)) = (&mut body, claims) {
            b.extend(extra);
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let pem = if forgery == Forgery::OtherKey {
            OTHER_PEM
        } else {
            PRIVATE_PEM
        };
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("the sandbox's signing key: {e}"))?;
        jsonwebtoken::encode(&header, &body, &key).map_err(|e| format!("signing: {e}"))
    }

    /// `GET <openid_path>` and `GET <jwks_path>`; `base` is where clients reach this server.
    pub fn router(&self, openid_path: &str, jwks_path: &str, base: String) -> Router {
        let jwks_url = format!("{}{jwks_path}", base.trim_end_matches('/'));
        Router::new()
            .route(
                openid_path,
                get(|State((i, url)): State<(Issuer, String)>| async move { Json(i.openid(&url)) }),
            )
            .route(
                jwks_path,
                get(|State((i, _)): State<(Issuer, String)>| async move { Json(i.jwks()) }),
            )
            .with_state((self.clone(), jwks_url))
    }
}

/// Another RSA key: what a forger signs with.
const OTHER_PEM: &str = include_str!("../keys/other.pem");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_the_published_key_and_a_forged_one_does_not() {
        let issuer = Issuer {
            issuer: "https://api.botframework.com".into(),
            kid: "sbx1".into(),
            endorsements: vec!["msteams".into()],
        };
        let jwks = issuer.jwks();
        let key = &jwks["keys"][0];
        let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
            key["n"].as_str().unwrap(),
            key["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&["app-1"]);
        v.set_issuer(&["https://api.botframework.com"]);
        let now = chrono_now();
        let good = issuer
            .token(
                "app-1",
                json!({"serviceurl": "http://x/"}),
                now,
                Forgery::None,
            )
            .unwrap();
        let claims = jsonwebtoken::decode::<Value>(&good, &decoding, &v)
            .unwrap()
            .claims;
        assert_eq!(claims["serviceurl"], "http://x/");
        for f in [Forgery::OtherKey, Forgery::Expired, Forgery::OtherAudience] {
            let bad = issuer.token("app-1", json!({}), now, f).unwrap();
            assert!(
                jsonwebtoken::decode::<Value>(&bad, &decoding, &v).is_err(),
                "{f:?}"
            );
        }
    }

    fn chrono_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }
}
