//! The OAuth 2.0 authorisation-code flow (RFC 6749 §4.1, PKCE per RFC 7636) every OAuth
//! integration shares. The gateway owns the browser's side (state, verifier, callback route);
//! the service builds the provider's authorise URL and redeems the code, because only it
//! holds the client secret. A provider says where its user signs in ([`OAuthFlow`]).
use std::collections::HashMap;

use bac_runtime::{ErrorCode, ServiceError};
use serde_json::{Map, Value};

use crate::AccessToken;

/// Where and for what a connection's user grants access.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The provider's authorise endpoint (Zoho: `https://accounts.zoho.eu/oauth/v2/auth`).
    pub authorize_url: String,
    pub scopes: Vec<String>,
    /// How the provider joins scopes in the `scope` parameter (RFC 6749: a space; Zoho: `,`).
    pub scope_separator: &'static str,
    /// Provider parameters (`access_type=offline`, `prompt=consent`).
    pub params: Vec<(String, String)>,
}

/// A provider's part of the authorisation-code flow.
pub trait OAuthFlow: Send + Sync + 'static {
    /// The authorise endpoint, scopes and parameters for a connection's settings.
    fn authorization(&self, settings: &Value) -> Result<Authorization, ServiceError>;

    /// The token endpoint the callback's code is redeemed at. The callback's parameters are
    /// the user's browser talking: a provider that names a server there (Zoho's
    /// `accounts-server`) is believed only for its own known hosts.
    fn token_url(
        &self,
        settings: &Value,
        callback: &HashMap<String, String>,
    ) -> Result<String, ServiceError>;

    /// Settings learnt from the first token answer (Zoho's `api_domain`; Slack's `team.id`,
    /// nested fields named by their path).
    fn learnt(&self, _token: &AccessToken) -> Map<String, Value> {
        Map::new()
    }

    /// Providers whose code gives an access token that does not expire and no refresh token
    /// (Slack's bot tokens without token rotation): the credential field the access token is
    /// kept in. None: a refresh token is required (offline access).
    fn access_token_field(&self) -> Option<&'static str> {
        None
    }
}

/// The authorise URL: the provider's endpoint with the RFC 6749 §4.1.1 parameters.
pub fn authorize_url(
    auth: &Authorization,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    code_challenge: &str,
) -> Result<String, ServiceError> {
    let mut url = url::Url::parse(&auth.authorize_url).map_err(|e| {
        ServiceError::internal(
            "oauth",
            format!("authorise URL {}: {e}", auth.authorize_url),
        )
    })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &auth.scopes.join(auth.scope_separator))
            .append_pair("state", state);
        if !code_challenge.is_empty() {
            q.append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256");
        }
        for (k, v) in &auth.params {
            q.append_pair(k, v);
        }
    }
    Ok(url.to_string())
}

/// Checks what the gateway passes on: a redirect URI it can be called back at.
pub fn check_redirect_uri(integration: &str, uri: &str) -> Result<(), ServiceError> {
    match url::Url::parse(uri) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        _ => Err(ServiceError::new(
            integration,
            ErrorCode::InvalidRequest,
            format!("redirect_uri '{uri}' is not an http(s) URL"),
        )),
    }
}

/// The scopes a token answer granted, split as the provider joins them (space or comma).
pub fn granted_scopes(scope: &str) -> Vec<String> {
    scope
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_carries_the_rfc_parameters_and_the_providers() {
        let auth = Authorization {
            authorize_url: "https://accounts.zoho.eu/oauth/v2/auth".into(),
            scopes: vec!["ZohoCRM.modules.ALL".into(), "ZohoCRM.org.READ".into()],
            scope_separator: ",",
            params: vec![("access_type".into(), "offline".into())],
        };
        let url =
            authorize_url(&auth, "1000.ABC", "https://bac.example/cb", "zoho.s1", "ch").unwrap();
        let u = url::Url::parse(&url).unwrap();
        let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(u.host_str(), Some("accounts.zoho.eu"));
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "ZohoCRM.modules.ALL,ZohoCRM.org.READ");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["access_type"], "offline");
        assert_eq!(q["redirect_uri"], "https://bac.example/cb");
        assert_eq!(granted_scopes("a,b c"), vec!["a", "b", "c"]);
        assert!(check_redirect_uri("zoho", "javascript:alert(1)").is_err());
    }
}
