//! What Windows the hives belong to, read once per inspection
//! ([`Ctx::os`](super::Ctx::os)) so that checks can apply the defaults of that
//! build: TLS versions, whether NLA and the WFAS rule store exist, whether the
//! machine is in a domain.
//!
//! The build comes from SOFTWARE `Microsoft\Windows NT\CurrentVersion`
//! (`CurrentBuild`, else `CurrentBuildNumber`; `CurrentMajorVersionNumber` /
//! `CurrentVersion`; `ProductName`). Without SOFTWARE only the era is inferred
//! from SYSTEM: `Control\ProductOptions\ProductPolicy` exists from Vista on
//! (the licensing policy blob), the version prefix of the built-in firewall
//! rules (`v2.0` Vista, `v2.10` Windows 7, `v2.20`/`v2.22` Windows 8/8.1,
//! `v2.24`+ Windows 10) [MS-GPFAS 2.2.2.19], and no `Services\MpsSvc` plus no
//! `ProductPolicy` means NT 5.x (XP/2003, where the firewall is SharedAccess).

use super::Ctx;
use crate::hive::source::HiveKind::{Security, Software, System};
use serde::Serialize;

/// Windows generations whose RDP / firewall defaults differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Era {
    /// NT 5.x: Windows XP, Server 2003 (R2). No NLA/CredSSP, no WFAS rule
    /// store, only Domain and Standard firewall profiles.
    Nt5,
    /// NT 6.0: Vista, Server 2008.
    Vista,
    /// NT 6.1: Windows 7, Server 2008 R2.
    Win7,
    /// NT 6.2 / 6.3: Windows 8 / 8.1, Server 2012 / 2012 R2.
    Win8,
    /// NT 10.0: Windows 10 / 11, Server 2016 and later.
    Win10,
}

impl Era {
    /// The era of a build number (`CurrentBuild`).
    pub fn of_build(build: u32) -> Era {
        match build {
            0..=5999 => Era::Nt5,
            6000..=7599 => Era::Vista,
            7600..=9199 => Era::Win7,
            9200..=10239 => Era::Win8,
            _ => Era::Win10,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Era::Nt5 => "Windows XP / Server 2003 (NT 5.x)",
            Era::Vista => "Windows Vista / Server 2008 (NT 6.0)",
            Era::Win7 => "Windows 7 / Server 2008 R2 (NT 6.1)",
            Era::Win8 => "Windows 8 / 8.1 / Server 2012 (R2)",
            Era::Win10 => "Windows 10 / 11 / Server 2016+",
        }
    }
}

/// Domain role as the hives show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DomainRole {
    /// No sign of a domain membership.
    Workgroup,
    /// Joined to a domain.
    Member,
    /// A domain controller (`ProductType` = `LanmanNT`).
    Controller,
}

/// The OS facts checks depend on.
#[derive(Debug, Clone, Serialize)]
pub struct OsInfo {
    /// `CurrentBuild` (or `CurrentBuildNumber`) from SOFTWARE.
    pub build: Option<u32>,
    /// `ProductName` from SOFTWARE.
    pub product_name: Option<String>,
    /// The generation: from the build, else inferred from SYSTEM.
    pub era: Option<Era>,
    /// The era was inferred from SYSTEM (no SOFTWARE build).
    pub inferred: bool,
    /// `Control\ProductOptions\ProductType`: WinNT (client), ServerNT, LanmanNT (DC).
    pub product_type: Option<String>,
    pub domain: DomainRole,
    /// Why `domain` is what it is.
    pub domain_evidence: Option<String>,
}

const CV: &str = r"Microsoft\Windows NT\CurrentVersion";

impl OsInfo {
    pub fn load(ctx: &Ctx) -> OsInfo {
        let s = |n: &str| ctx.string(Software, CV, n).filter(|s| !s.trim().is_empty());
        // XP/2003 keep "1.511.1 () (Obsolete data - do not use)" in CurrentBuild: take the first that parses.
        let build = ["CurrentBuild", "CurrentBuildNumber"].into_iter().find_map(|n| s(n).and_then(|b| b.trim().parse::<u32>().ok()));
        let product_type = ctx.string(System, r"{CCS}\Control\ProductOptions", "ProductType").map(|t| t.trim().to_string());
        let (era, inferred) = match build {
            Some(b) => (Some(Era::of_build(b)), false),
            None => (infer_era(ctx), true),
        };
        let (domain, domain_evidence) = domain_role(ctx, product_type.as_deref());
        OsInfo { build, product_name: s("ProductName"), era, inferred, product_type, domain, domain_evidence }
    }

    /// Known to be NT 5.x (XP / 2003): no NLA, no WFAS rule store, no Public profile.
    pub fn pre_vista(&self) -> bool {
        self.era == Some(Era::Nt5)
    }

    /// Known to be older than `era`.
    pub fn before(&self, era: Era) -> bool {
        self.era.is_some_and(|e| e < era)
    }

    /// Known to be `era` or newer.
    pub fn at_least(&self, era: Era) -> bool {
        self.era.is_some_and(|e| e >= era)
    }

    /// Known build at or above `build` (only from SOFTWARE).
    pub fn build_at_least(&self, build: u32) -> bool {
        self.build.is_some_and(|b| b >= build)
    }

    /// A server SKU (ServerNT or LanmanNT).
    pub fn is_server(&self) -> bool {
        self.product_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("WinNT"))
    }

    /// A domain member or domain controller.
    pub fn in_domain(&self) -> bool {
        self.domain != DomainRole::Workgroup
    }

    /// "Windows 7 / Server 2008 R2 (NT 6.1), build 7601" or "... (inferred from SYSTEM)".
    pub fn describe(&self) -> String {
        let era = self.era.map_or("an unknown Windows version", Era::name);
        match (self.build, self.inferred && self.era.is_some()) {
            (Some(b), _) => format!("{era}, build {b}"),
            (None, true) => format!("{era} (inferred from SYSTEM)"),
            (None, false) => era.to_string(),
        }
    }
}

fn infer_era(ctx: &Ctx) -> Option<Era> {
    ctx.hive(System)?;
    let policy = ctx.value(System, r"{CCS}\Control\ProductOptions", "ProductPolicy").is_some();
    let mpssvc = ctx.shared_key(System, r"{CCS}\Services\MpsSvc").is_some();
    if !policy && !mpssvc {
        // Only say NT 5 when the hive looks like a Windows SYSTEM hive at all.
        return ctx.shared_key(System, r"{CCS}\Control\ProductOptions").is_some().then_some(Era::Nt5);
    }
    // The newest firewall rule version written by this OS's own setup.
    let rules = r"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\FirewallRules";
    let newest = ctx
        .shared_key(System, rules)
        .map(|k| {
            k.values
                .iter()
                .filter(|v| matches!(v.kind, 1 | 2))
                .filter_map(|v| {
                    // Only the version is decoded: the UTF-16 units before the first '|'.
                    let bar = v.raw.chunks_exact(2).position(|c| c == [b'|', 0]).map_or(v.raw.len(), |i| 2 * i);
                    let s = crate::bytes::utf16le(&v.raw[..bar]);
                    let ver = s.trim().strip_prefix('v')?.to_string();
                    let (a, b) = ver.split_once('.')?;
                    Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
                })
                .max()
        })
        .unwrap_or(None);
    Some(match newest {
        Some((2, 0..=9)) => Era::Vista,
        Some((2, 10..=19)) => Era::Win7,
        Some((2, 20..=23)) => Era::Win8,
        Some(_) => Era::Win10,
        None => Era::Vista, // Vista or later, nothing finer known: the conservative lower bound
    })
}

/// Domain membership from the hives: a DC by `ProductType`; a member by the
/// primary domain SID in SECURITY (`Policy\PolPrDmS`), else by what only a
/// joined machine writes in SYSTEM (Netlogon's site name, or Netlogon set to
/// start automatically together with a primary DNS domain).
fn domain_role(ctx: &Ctx, product_type: Option<&str>) -> (DomainRole, Option<String>) {
    if product_type.is_some_and(|t| t.eq_ignore_ascii_case("LanmanNT")) {
        return (DomainRole::Controller, Some("ProductType = LanmanNT (domain controller)".into()));
    }
    // What win-toggle-safe-mode [R-safemode] looks at.
    if ctx.string(System, r"{CCS}\Services\NTDS\Parameters", "DSA Database file").is_some() {
        return (DomainRole::Controller, Some("Services\\NTDS\\Parameters names a DSA database (domain controller)".into()));
    }
    if let Some(sec) = ctx.hive(Security) {
        if let Ok(k) = sec.key(r"Policy\PolPrDmS") {
            // The default value holds the primary domain's SID; a workgroup machine has none.
            let sid = k.values.iter().find(|v| v.name.is_empty()).map(|v| v.raw.len()).unwrap_or(0);
            return if sid >= 8 {
                (DomainRole::Member, Some("SECURITY Policy\\PolPrDmS holds a primary domain SID".into()))
            } else {
                (DomainRole::Workgroup, Some("SECURITY Policy\\PolPrDmS holds no domain SID".into()))
            };
        }
    }
    let params = r"{CCS}\Services\Netlogon\Parameters";
    for n in ["DynamicSiteName", "SiteName"] {
        if let Some(site) = ctx.string(System, params, n).filter(|s| !s.trim().is_empty()) {
            return (DomainRole::Member, Some(format!("Netlogon {n} = {site}")));
        }
    }
    let auto = ctx.dword(System, r"{CCS}\Services\Netlogon", "Start") == Some(2);
    let dns = ctx.string(System, r"{CCS}\Services\Tcpip\Parameters", "Domain").filter(|s| !s.trim().is_empty());
    match (auto, dns) {
        (true, Some(d)) => (DomainRole::Member, Some(format!("Netlogon starts automatically and the primary DNS domain is {d}"))),
        _ => (DomainRole::Workgroup, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_of_builds() {
        assert_eq!(Era::of_build(2600), Era::Nt5);
        assert_eq!(Era::of_build(3790), Era::Nt5);
        assert_eq!(Era::of_build(6002), Era::Vista);
        assert_eq!(Era::of_build(7601), Era::Win7);
        assert_eq!(Era::of_build(9600), Era::Win8);
        assert_eq!(Era::of_build(17763), Era::Win10);
        assert!(Era::Nt5 < Era::Vista && Era::Win8 < Era::Win10);
    }
}
