//! The vocabulary shared by the catalog (the data) and the evaluators (the
//! code): what a catalog row is, the registry locations several checks read,
//! and [`Out`], what every evaluator writes its settings and findings into.
//! Both `catalog.rs` and `custom.rs` depend on this module and not on each
//! other's internals; `eval.rs` runs the rows.

use super::{Ctx, Finding, Setting, Severity};
use crate::hive::edit::Edit;
use crate::hive::source::HiveKind;
use serde::Serialize;

/// Part of the RDP path a check belongs to (the report groups by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    Listener,
    Security,
    Services,
    Network,
    Firewall,
    Boot,
    Logon,
    Licensing,
}

/// Registry type of a checked value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Dword,
    Sz,
    ExpandSz,
    MultiSz,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Dword => "REG_DWORD",
            Ty::Sz => "REG_SZ",
            Ty::ExpandSz => "REG_EXPAND_SZ",
            Ty::MultiSz => "REG_MULTI_SZ",
        }
    }
}

/// A literal value (a default, or what a fix writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lit {
    D(u32),
    S(&'static str),
}

/// What an absent value means.
#[derive(Debug, Clone, Copy)]
pub enum Absent {
    /// Windows behaves as if the value were this.
    Default(Lit),
    /// Absent is itself broken (the reason is shown).
    Broken(&'static str),
    /// Absent is fine (the meaning is shown).
    Fine(&'static str),
}

/// Healthy predicate on the effective value.
#[derive(Debug, Clone, Copy)]
pub enum Pred {
    Eq(u32),
    In(&'static [u32]),
    Range(u32, u32),
    Ne(u32),
    Ge(u32),
    /// Case-insensitive string equality.
    StrEq(&'static str),
    /// Case-insensitive equality with one of these.
    StrIn(&'static [&'static str]),
    /// Case-insensitive suffix.
    StrEnds(&'static str),
    /// A string (or MULTI_SZ) with at least one non-blank character.
    NotEmpty,
}

/// How a broken value is fixed.
#[derive(Debug, Clone, Copy)]
pub enum Fix {
    /// Write this value (with the row's type).
    Set(Lit),
    /// Delete the value.
    Delete,
    /// No safe automatic fix; the text says what to do.
    Manual(&'static str),
}

/// The evaluator of a row whose logic is code (see `custom.rs`).
pub(crate) type Eval = fn(&Ctx, &Check, &mut Out);

/// The row as it applies to this machine (its Windows build, domain role,
/// related values), or `None` when the setting does not exist or cannot
/// matter there (see `custom.rs`).
pub(crate) type Adapt = fn(&Ctx, &Check) -> Option<Check>;

/// One catalog row. A value row names one registry value (`key`, `value`,
/// `ty`, optional Group Policy counterpart) with its healthy predicate, the
/// meaning of its absence and its fix; a code row names its evaluator in
/// `run` and leaves the value fields at their defaults.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub id: &'static str,
    /// The id reported when the Group Policy copy is the broken one.
    pub policy_id: Option<&'static str>,
    pub area: Area,
    pub hive: HiveKind,
    pub severity: Severity,
    /// Short name of the setting.
    pub title: &'static str,
    /// What the broken state does to RDP.
    pub explain: &'static str,
    /// Key path inside the check's hive; `{CCS}` is the current control set.
    pub key: &'static str,
    /// The value's name.
    pub value: &'static str,
    pub ty: Ty,
    /// Group Policy counterpart in SOFTWARE (key, value); it wins over the local value.
    pub policy: Option<(&'static str, &'static str)>,
    pub absent: Absent,
    pub healthy: Pred,
    pub fix: Fix,
    /// Code rows: the evaluator; `None` for a value row.
    pub(crate) run: Option<Eval>,
    /// Rows whose meaning depends on the machine: applied before evaluation.
    pub(crate) adapt: Option<Adapt>,
}

impl Check {
    /// The fields a row does not name: a DWORD value row of SYSTEM without a
    /// policy counterpart. `id`, `area`, `severity`, `title`, `explain` and
    /// either `run` or `key`/`value`/`absent`/`healthy`/`fix` are always given
    /// (the catalog tests check it).
    pub const DEFAULT: Check = Check {
        id: "",
        policy_id: None,
        area: Area::Listener,
        hive: HiveKind::System,
        severity: Severity::Info,
        title: "",
        explain: "",
        key: "",
        value: "",
        ty: Ty::Dword,
        policy: None,
        absent: Absent::Fine(""),
        healthy: Pred::NotEmpty,
        fix: Fix::Manual(""),
        run: None,
        adapt: None,
    };

    /// Whether this row is evaluated by code rather than as one value.
    pub fn is_code(&self) -> bool {
        self.run.is_some()
    }
}

pub const TS: &str = r"{CCS}\Control\Terminal Server";
pub const RDP_TCP: &str = r"{CCS}\Control\Terminal Server\WinStations\RDP-Tcp";
pub const TS_POLICY: &str = r"Policies\Microsoft\Windows NT\Terminal Services";
pub const LSA: &str = r"{CCS}\Control\Lsa";
pub const SCHANNEL: &str = r"{CCS}\Control\SecurityProviders\SCHANNEL\Protocols";
pub const WINLOGON: &str = r"Microsoft\Windows NT\CurrentVersion\Winlogon";
pub const CREDSSP: &str = r"Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters";
pub const CIPHER_POLICY: &str = r"Policies\Microsoft\Cryptography\Configuration\SSL\00010002";

/// What the evaluators write into.
#[derive(Default)]
pub(crate) struct Out {
    pub settings: Vec<Setting>,
    pub findings: Vec<Finding>,
}

impl Out {
    pub fn finding(&mut self, c: &Check, id: &'static str, severity: Severity, message: String, fix: Remedy) {
        let (fix, actions) = match fix {
            Remedy::Actions(a) if a.is_empty() => ("nothing to change".into(), a),
            Remedy::Actions(a) => (a.iter().map(Edit::describe).collect::<Vec<_>>().join("; "), a),
            Remedy::Manual(t) => (format!("manual: {t}"), Vec::new()),
        };
        self.findings.push(Finding { check: id.into(), severity, title: c.title, message, fix, actions, reapplied_by: Vec::new(), confirmed_by: None });
    }

    pub fn note(&mut self, c: &Check, message: String) {
        self.finding(c, c.id, Severity::Info, message, Remedy::Manual("none needed".into()));
    }

    pub fn setting(&mut self, s: Setting) {
        self.settings.push(s);
    }
}

/// A fix: registry edits, or a manual procedure.
pub(crate) enum Remedy {
    Actions(Vec<Edit>),
    Manual(String),
}
