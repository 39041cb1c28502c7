//! Zoho's data centres. An account lives in one; its accounts server issues and refreshes its
//! tokens and its API domain serves its data, so a connection names its data centre and every
//! call goes to that data centre's hosts (a token from `.eu` is refused by `.com`). The list
//! follows Zoho's multi-DC documentation; the key is the domain suffix people see in their
//! Zoho URL, `location` what Zoho's OAuth callback calls it.
use std::collections::HashMap;

/// One data centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCenter {
    /// The connection setting `data_center` (`com`, `eu`, `com.au`...).
    pub key: &'static str,
    /// The callback's `location` parameter (`us`, `eu`, `au`...).
    pub location: &'static str,
    pub name: &'static str,
    /// `https://accounts.zoho.eu`.
    pub accounts: String,
    /// `https://www.zohoapis.eu` (CRM, Books, Inventory).
    pub api: String,
    /// `https://desk.zoho.eu`: Desk answers on a host of its own.
    pub desk: String,
    /// `https://people.zoho.eu`.
    pub people: String,
    /// `https://mail.zoho.eu`.
    pub mail: String,
}

/// The product hosts of a data centre whose accounts server is `accounts` (`accounts.zoho.eu`
/// -> `desk.zoho.eu`; Canada's `accounts.zohocloud.ca` -> `desk.zohocloud.ca`).
fn product_host(accounts: &str, product: &str) -> String {
    format!(
        "https://{product}.{}",
        accounts.strip_prefix("accounts.").unwrap_or(accounts)
    )
}

const KNOWN: &[(&str, &str, &str, &str, &str)] = &[
    (
        "com",
        "us",
        "United States",
        "accounts.zoho.com",
        "www.zohoapis.com",
    ),
    ("eu", "eu", "Europe", "accounts.zoho.eu", "www.zohoapis.eu"),
    ("in", "in", "India", "accounts.zoho.in", "www.zohoapis.in"),
    (
        "com.au",
        "au",
        "Australia",
        "accounts.zoho.com.au",
        "www.zohoapis.com.au",
    ),
    ("jp", "jp", "Japan", "accounts.zoho.jp", "www.zohoapis.jp"),
    (
        "com.cn",
        "cn",
        "China",
        "accounts.zoho.com.cn",
        "www.zohoapis.com.cn",
    ),
    (
        "ca",
        "ca",
        "Canada",
        "accounts.zohocloud.ca",
        "www.zohoapis.ca",
    ),
    (
        "sa",
        "sa",
        "Saudi Arabia",
        "accounts.zoho.sa",
        "www.zohoapis.sa",
    ),
    (
        "uk",
        "uk",
        "United Kingdom",
        "accounts.zoho.uk",
        "www.zohoapis.uk",
    ),
    (
        "ae",
        "ae",
        "United Arab Emirates",
        "accounts.zoho.ae",
        "www.zohoapis.ae",
    ),
];

/// The data-centre keys, in the order documentation lists them.
pub fn keys() -> Vec<&'static str> {
    KNOWN.iter().map(|k| k.0).collect()
}

/// Zoho's data centres, with the hosts an operator may point elsewhere
/// (`BAC_ZOHO_DATA_CENTERS=eu=http://sandbox:7002/eu,...`: the accounts server and API of
/// each listed data centre at that base URL, Desk, People and Mail at `<base>/desk`,
/// `<base>/people`, `<base>/mail`; the sandbox serves them so).
#[derive(Debug, Clone)]
pub struct DataCenters {
    all: Vec<DataCenter>,
}

impl Default for DataCenters {
    fn default() -> Self {
        DataCenters {
            all: KNOWN
                .iter()
                .map(|(key, location, name, accounts, api)| DataCenter {
                    key,
                    location,
                    name,
                    accounts: format!("https://{accounts}"),
                    api: format!("https://{api}"),
                    desk: product_host(accounts, "desk"),
                    people: product_host(accounts, "people"),
                    mail: product_host(accounts, "mail"),
                })
                .collect(),
        }
    }
}

impl DataCenters {
    /// The documented hosts, with `overrides` (key -> base URL) applied.
    pub fn with_overrides(overrides: &HashMap<String, String>) -> Result<Self, String> {
        let mut dcs = DataCenters::default();
        for (key, base) in overrides {
            let base = base.trim_end_matches('/');
            let dc = dcs.all.iter_mut().find(|d| d.key == key).ok_or_else(|| {
                format!("'{key}' is not a Zoho data centre ({})", keys().join(", "))
            })?;
            url::Url::parse(base).map_err(|e| format!("{key}={base}: {e}"))?;
            dc.accounts = base.to_string();
            dc.api = base.to_string();
            dc.desk = format!("{base}/desk");
            dc.people = format!("{base}/people");
            dc.mail = format!("{base}/mail");
        }
        Ok(dcs)
    }

    /// Parses `eu=http://host:7002/eu,com=...` (empty: none).
    pub fn parse_overrides(spec: &str) -> Result<HashMap<String, String>, String> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .ok_or_else(|| format!("'{item}' is not key=url"))
            })
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<&DataCenter> {
        self.all.iter().find(|d| d.key == key)
    }

    pub fn by_location(&self, location: &str) -> Option<&DataCenter> {
        self.all.iter().find(|d| d.location == location)
    }

    /// Whether `url` is the API domain of data centre `key` (a token answer's `api_domain`
    /// is believed only for its own data centre: the access token goes there).
    pub fn is_api_of(&self, key: &str, url: &str) -> bool {
        self.get(key)
            .is_some_and(|d| d.api.trim_end_matches('/') == url.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_hosts_and_overrides() {
        let dcs = DataCenters::default();
        assert_eq!(dcs.get("eu").unwrap().accounts, "https://accounts.zoho.eu");
        assert_eq!(
            dcs.get("ca").unwrap().accounts,
            "https://accounts.zohocloud.ca"
        );
        assert_eq!(dcs.get("ca").unwrap().api, "https://www.zohoapis.ca");
        assert_eq!(dcs.get("ca").unwrap().desk, "https://desk.zohocloud.ca");
        assert_eq!(
            dcs.get("com.au").unwrap().people,
            "https://people.zoho.com.au"
        );
        assert_eq!(dcs.get("eu").unwrap().mail, "https://mail.zoho.eu");
        assert_eq!(dcs.by_location("au").unwrap().key, "com.au");
        assert!(dcs.get("de").is_none());
        assert!(dcs.is_api_of("eu", "https://www.zohoapis.eu/"));
        assert!(!dcs.is_api_of("eu", "https://www.zohoapis.com"));
        let o = DataCenters::parse_overrides("eu=http://127.0.0.1:7002/eu/").unwrap();
        let dcs = DataCenters::with_overrides(&o).unwrap();
        assert_eq!(dcs.get("eu").unwrap().accounts, "http://127.0.0.1:7002/eu");
        assert_eq!(dcs.get("eu").unwrap().desk, "http://127.0.0.1:7002/eu/desk");
        assert!(
            DataCenters::with_overrides(&DataCenters::parse_overrides("de=http://x").unwrap())
                .is_err()
        );
        assert!(DataCenters::parse_overrides("eu").is_err());
    }
}
