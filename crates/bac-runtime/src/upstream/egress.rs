//! The egress policy: which addresses an upstream call may connect to. A tenant chooses its
//! upstream's URL, so without this a connection URL is a way into the fleet's own network
//! (Vault, Postgres, the cloud's metadata service). Every address a call would connect to is
//! classified; loopback, link-local, metadata, private, shared, multicast and reserved
//! addresses are refused unless the deployment allow-lists their range
//! (`BAC_UPSTREAM_ALLOW_CIDRS`, e.g. an on-premises Odoo on `10.20.0.0/16`).
//!
//! Names are checked in the HTTP client's resolver, so the address that was checked is the
//! address connected to (a second DNS answer cannot rebind it); IP literals, which the client
//! never resolves, and every redirect hop are checked before they are used.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use ipnet::IpNet;

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    LinkLocal,
    /// A cloud instance metadata endpoint (169.254.169.254, fd00:ec2::254, 100.100.100.200).
    Metadata,
    /// RFC 1918 (IPv4) or RFC 4193 unique local / deprecated site-local (IPv6).
    Private,
    /// RFC 6598 carrier-grade NAT space, 100.64.0.0/10 (also used inside clusters).
    SharedAddressSpace,
    Unspecified,
    Multicast,
    Broadcast,
    /// Documentation, benchmarking, protocol-assignment and future-use ranges.
    Reserved,
}

impl AddressClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Loopback => "loopback",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Metadata => "cloud metadata",
            AddressClass::Private => "private network",
            AddressClass::SharedAddressSpace => "shared address space (100.64.0.0/10)",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of a non-public address; `None` for a public one.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let o = ip.octets();
    let class = match o {
        // EC2/GCE/Azure, ECS task credentials, EKS pod identity, Alibaba.
        [169, 254, 169, 254] | [169, 254, 170, 2] | [169, 254, 170, 23] | [100, 100, 100, 200] => {
            AddressClass::Metadata
        }
        [0, ..] => AddressClass::Unspecified,
        [127, ..] => AddressClass::Loopback,
        [169, 254, ..] => AddressClass::LinkLocal,
        [10, ..] | [192, 168, ..] => AddressClass::Private,
        [172, b, ..] if (16..32).contains(&b) => AddressClass::Private,
        [100, b, ..] if (64..128).contains(&b) => AddressClass::SharedAddressSpace,
        [255, 255, 255, 255] => AddressClass::Broadcast,
        [a, ..] if (224..240).contains(&a) => AddressClass::Multicast,
        [a, ..] if a >= 240 => AddressClass::Reserved,
        [192, 0, 0, _]
        | [192, 0, 2, _]
        | [198, 51, 100, _]
        | [203, 0, 113, _]
        | [192, 88, 99, _] => AddressClass::Reserved,
        [198, b, ..] if b == 18 || b == 19 => AddressClass::Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    // IPv4 carried inside IPv6 reaches the IPv4 address: judge that one.
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let class = match s {
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] | [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023] => {
            AddressClass::Metadata
        }
        // Local-use NAT64 (RFC 8215) translates to the operator's own IPv4 networks.
        [0x0064, 0xff9b, 0x0001, ..] => AddressClass::Private,
        // Teredo tunnels to an address this policy cannot see.
        [0x2001, 0x0000, ..] => AddressClass::Reserved,
        [a, ..] if a & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        [a, ..] if a & 0xffc0 == 0xfec0 => AddressClass::Private,
        [a, ..] if a & 0xfe00 == 0xfc00 => AddressClass::Private,
        [a, ..] if a & 0xff00 == 0xff00 => AddressClass::Multicast,
        [0x0100, 0, 0, 0, ..] | [0x2001, 0x0db8, ..] => AddressClass::Reserved,
        _ => return None,
    };
    Some(class)
}

/// The IPv4 address an IPv6 address stands for: mapped (::ffff:a.b.c.d), compatible
/// (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // Mapped, compatible and SIIT-translated (::ffff:0:a.b.c.d).
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] | [0, 0, 0, 0, 0xffff, 0, ..] => {
            Some(tail())
        }
        [0x0064, 0xff9b, 0, 0, 0, 0, ..] => Some(tail()),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

/// An upstream address this deployment does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} is a {class} address, which this deployment does not allow upstream calls to")]
pub struct EgressRefused {
    /// The host as the URL names it (never the address a name resolved to).
    pub host: String,
    pub class: AddressClass,
}

/// Which non-public ranges the deployment opens; everything public is allowed.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Arc<Vec<IpNet>>,
}

impl EgressPolicy {
    /// Only public addresses.
    pub fn strict() -> Self {
        EgressPolicy::default()
    }

    /// Public addresses and the given ranges.
    pub fn allowing(ranges: Vec<IpNet>) -> Self {
        EgressPolicy {
            allow: Arc::new(ranges),
        }
    }

    /// `BAC_UPSTREAM_ALLOW_CIDRS`: comma-separated CIDRs or single addresses.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("{item:?} is not a CIDR such as 10.0.0.0/8"))?,
            };
            ranges.push(net.trunc());
        }
        Ok(EgressPolicy::allowing(ranges))
    }

    pub fn allowed_ranges(&self) -> &[IpNet] {
        &self.allow
    }

    /// Whether a call may connect to `ip`. A metadata address needs an allow-list entry of
    /// its own: opening a private range must not open the cloud's credentials with it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), AddressClass> {
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        let canonical = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let allowed = self.allow.iter().any(|net| {
            let hit = net.contains(&ip) || net.contains(&canonical);
            hit && (class != AddressClass::Metadata || net.prefix_len() == net.max_prefix_len())
        });
        if allowed {
            Ok(())
        } else {
            Err(class)
        }
    }

    /// Checks the host of `url` when it is an IP literal (names are checked when resolved).
    pub fn check_literal(&self, url: &url::Url) -> Result<(), EgressRefused> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        self.check_ip(ip).map_err(|class| EgressRefused {
            host: url.host_str().unwrap_or_default().to_string(),
            class,
        })
    }

    /// The addresses of a lookup this policy allows; refused when none is left. A name with
    /// one public and one private answer connects only to the public one.
    pub fn filter(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, EgressRefused> {
        let mut refused = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.check_ip(a.ip()) {
                Ok(()) => true,
                Err(class) => {
                    refused.get_or_insert(class);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (true, Some(class)) => Err(EgressRefused {
                host: host.to_string(),
                class,
            }),
            _ => Ok(allowed),
        }
    }

    /// Resolves the host of `url` and checks every answer: what a connection's settings are
    /// checked with when they are saved. A name that does not resolve passes (it is checked
    /// again on every call).
    pub async fn check_url(&self, url: &url::Url) -> Result<(), EgressRefused> {
        self.check_literal(url)?;
        if let Some(url::Host::Domain(name)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(0);
            if let Ok(addrs) = tokio::net::lookup_host((name, port)).await {
                self.filter(name, addrs)?;
            }
        }
        Ok(())
    }
}

/// The HTTP client's resolver: the system's answers, filtered by the policy.
pub(super) struct EgressResolver {
    pub(super) policy: EgressPolicy,
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = policy.filter(&host, addrs)?;
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The policy's refusal inside an error's source chain (the HTTP client wraps it).
pub fn find_refusal(mut e: &(dyn std::error::Error + 'static)) -> Option<EgressRefused> {
    loop {
        if let Some(r) = e.downcast_ref::<EgressRefused>() {
            return Some(r.clone());
        }
        e = e.source()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classes() {
        for (addr, class) in [
            ("127.0.0.1", Some(AddressClass::Loopback)),
            ("127.8.9.10", Some(AddressClass::Loopback)),
            ("::1", Some(AddressClass::Loopback)),
            ("169.254.169.254", Some(AddressClass::Metadata)),
            ("fd00:ec2::254", Some(AddressClass::Metadata)),
            ("100.100.100.200", Some(AddressClass::Metadata)),
            ("169.254.170.2", Some(AddressClass::Metadata)),
            ("169.254.170.23", Some(AddressClass::Metadata)),
            ("fd00:ec2::23", Some(AddressClass::Metadata)),
            ("64:ff9b:1::a00:1", Some(AddressClass::Private)),
            ("2001:0:4136:e378::1", Some(AddressClass::Reserved)),
            ("::ffff:0:7f00:1", Some(AddressClass::Loopback)),
            ("192.88.99.1", Some(AddressClass::Reserved)),
            ("169.254.1.1", Some(AddressClass::LinkLocal)),
            ("fe80::1", Some(AddressClass::LinkLocal)),
            ("10.1.2.3", Some(AddressClass::Private)),
            ("172.16.0.1", Some(AddressClass::Private)),
            ("172.31.255.255", Some(AddressClass::Private)),
            ("192.168.1.1", Some(AddressClass::Private)),
            ("fd12:3456::1", Some(AddressClass::Private)),
            ("100.64.0.1", Some(AddressClass::SharedAddressSpace)),
            ("0.0.0.0", Some(AddressClass::Unspecified)),
            ("::", Some(AddressClass::Unspecified)),
            ("224.0.0.1", Some(AddressClass::Multicast)),
            ("ff02::1", Some(AddressClass::Multicast)),
            ("255.255.255.255", Some(AddressClass::Broadcast)),
            ("240.0.0.1", Some(AddressClass::Reserved)),
            // IPv4 inside IPv6 is judged as the IPv4 address it reaches.
            ("::ffff:127.0.0.1", Some(AddressClass::Loopback)),
            ("::ffff:169.254.169.254", Some(AddressClass::Metadata)),
            ("64:ff9b::a00:1", Some(AddressClass::Private)),
            ("2002:7f00:1::", Some(AddressClass::Loopback)),
            // Public.
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("2a00:1450:4001::200e", None),
            ("::ffff:8.8.8.8", None),
        ] {
            assert_eq!(classify(ip(addr)), class, "{addr}");
        }
    }

    #[test]
    fn allow_list_opens_ranges_but_metadata_only_by_name() {
        let p = EgressPolicy::parse("10.20.0.0/16, 127.0.0.1, 169.254.0.0/16").unwrap();
        assert!(p.check_ip(ip("10.20.3.4")).is_ok());
        assert!(p.check_ip(ip("::ffff:10.20.3.4")).is_ok());
        assert_eq!(p.check_ip(ip("10.21.0.1")), Err(AddressClass::Private));
        assert!(p.check_ip(ip("127.0.0.1")).is_ok());
        assert_eq!(p.check_ip(ip("127.0.0.2")), Err(AddressClass::Loopback));
        assert!(p.check_ip(ip("169.254.1.1")).is_ok());
        assert_eq!(
            p.check_ip(ip("169.254.169.254")),
            Err(AddressClass::Metadata)
        );
        let exact = EgressPolicy::parse("169.254.169.254/32").unwrap();
        assert!(exact.check_ip(ip("169.254.169.254")).is_ok());
        assert!(EgressPolicy::parse("10.0.0.0/33").is_err());
        assert!(EgressPolicy::parse("intranet").is_err());
        assert!(EgressPolicy::parse("").unwrap().allowed_ranges().is_empty());
    }

    #[test]
    fn lookups_keep_only_allowed_answers() {
        let p = EgressPolicy::strict();
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        let private: SocketAddr = "10.0.0.5:443".parse().unwrap();
        assert_eq!(p.filter("mixed", [public, private]).unwrap(), vec![public]);
        let err = p.filter("inside", [private]).unwrap_err();
        assert_eq!(err.class, AddressClass::Private);
        assert_eq!(err.host, "inside");
    }

    #[test]
    fn literals_are_checked_names_are_left_to_the_resolver() {
        let p = EgressPolicy::strict();
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(p.check_literal(&u("http://127.0.0.1:8200/v1")).is_err());
        assert!(p.check_literal(&u("http://[::1]:8200/")).is_err());
        assert!(p.check_literal(&u("http://[::ffff:7f00:1]/")).is_err());
        assert!(p.check_literal(&u("http://2130706433/")).is_err());
        assert!(p.check_literal(&u("http://odoo.example.com/")).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_inside_are_refused() {
        let p = EgressPolicy::strict();
        let err = p
            .check_url(&url::Url::parse("http://localhost:8200/").unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.class, AddressClass::Loopback);
        assert_eq!(err.host, "localhost");
    }
}
