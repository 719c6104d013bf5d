//! Which instruction-set features tract's kernels may use.
//!
//! tract probes the CPU once, then picks each matrix product's kernel with a
//! cost model fitted per vendor and tier. Its AMD AVX-512 model was fitted on
//! a Zen 5 desktop core, which has two 512-bit FMA units. A Zen 4 core runs
//! each 512-bit FMA on its two 256-bit units, and there tract's AVX2 kernels
//! beat its AVX-512 ones on every model Wayside ships (the detector in
//! 0.84–0.89× the time, docs/BENCHMARKS.md "Kept: AVX-512 kernels off where
//! a core has one 512-bit FMA unit"). So by default Wayside takes AVX-512
//! away from tract on an AMD core with one such unit, counted by tract's own
//! probe. Intel cores with one unit were not measured and keep tract's
//! choice.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tract_linalg::isa::{Isa, IsaSet, native};
use tract_onnx::prelude::tract_data::knobs::set_config_global;

/// tract's knob: edits of the probed set, comma-separated `+name`/`-name`.
const KNOB: &str = "TRACT_CPU_ISA";

/// `models.cpu_features`: "auto", "native", or edits in tract's
/// `TRACT_CPU_ISA` form (`-avx512f`, `-sve2,-fp16`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CpuFeatures {
    /// tract's probe, less AVX-512 where Wayside measured it to lose.
    #[default]
    Auto,
    /// tract's probe as it is.
    Native,
    /// tract's probe with these features added or removed.
    Edit(Vec<FeatureEdit>),
}

/// One feature added to (`+name`) or removed from (`-name`) tract's probe.
/// Adding one the CPU lacks crashes the first kernel that uses it; it is
/// for a board whose kernel hides a feature from tract's probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureEdit {
    pub add: bool,
    pub feature: Isa,
}

impl fmt::Display for FeatureEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.add { '+' } else { '-' };
        write!(f, "{sign}{}", self.feature.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuFeaturesError {
    #[error(
        "{0:?}: expected \"auto\", \"native\" or features to add or remove, as \"-avx512f\" or \"+fp16,-sve2\""
    )]
    Syntax(String),
    #[error("{0}")]
    Unknown(String),
    #[error("{0} names an architecture, not a feature of it")]
    NotAFeature(String),
    #[error("{0} is named twice")]
    NamedTwice(String),
    #[error("{name} is a feature of {arch}, and this machine is {native}")]
    OtherArch {
        name: String,
        arch: String,
        native: &'static str,
    },
    #[error("{0}: one process, one set of kernels")]
    Twice(String),
    #[error(
        "tract had probed the CPU before the setting was made, so it uses {isa}: set it before the first model loads"
    )]
    TooLate { isa: String },
}

impl FromStr for CpuFeatures {
    type Err = CpuFeaturesError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        match spec.trim() {
            "auto" => return Ok(Self::Auto),
            "native" => return Ok(Self::Native),
            _ => {}
        }
        let mut edits = vec![];
        for token in spec.split(',').map(str::trim) {
            let (add, name) = match token.split_at_checked(1) {
                Some(("+", name)) if !name.is_empty() => (true, name),
                Some(("-", name)) if !name.is_empty() => (false, name),
                _ => return Err(CpuFeaturesError::Syntax(spec.to_string())),
            };
            // tract's own parser knows the names and their architectures; a
            // name of another architecture would panic at its probe.
            let set =
                IsaSet::from_str(name).map_err(|e| CpuFeaturesError::Unknown(format!("{e}")))?;
            if let Some(arch) = set.arch().filter(|a| !a.is_native()) {
                return Err(CpuFeaturesError::OtherArch {
                    name: name.to_string(),
                    arch: arch.to_string(),
                    native: std::env::consts::ARCH,
                });
            }
            let feature = set
                .iter()
                .find(|f| !f.is_arch())
                .ok_or_else(|| CpuFeaturesError::NotAFeature(name.to_string()))?;
            // tract applies edits in order, so "-fma,+fma" would leave
            // the first undone and fail the check after the probe.
            if edits.iter().any(|e: &FeatureEdit| e.feature == feature) {
                return Err(CpuFeaturesError::NamedTwice(name.to_string()));
            }
            edits.push(FeatureEdit { add, feature });
        }
        Ok(Self::Edit(edits))
    }
}

impl TryFrom<String> for CpuFeatures {
    type Error = CpuFeaturesError;

    fn try_from(spec: String) -> Result<Self, Self::Error> {
        spec.parse()
    }
}

impl From<CpuFeatures> for String {
    fn from(features: CpuFeatures) -> Self {
        features.to_string()
    }
}

impl fmt::Display for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Native => f.write_str("native"),
            Self::Edit(edits) => f.write_str(&knob_value(edits)),
        }
    }
}

fn knob_value(edits: &[FeatureEdit]) -> String {
    let tokens: Vec<String> = edits.iter().map(FeatureEdit::to_string).collect();
    tokens.join(",")
}

/// What [`set_cpu_features`] left tract with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuChoice {
    /// The features tract's kernels pick from, as tract prints them.
    pub isa: String,
    /// The edit made to tract's probe, if any, and whence it came.
    pub edit: Option<String>,
}

impl fmt::Display for CpuChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.edit {
            Some(edit) => write!(f, "{} ({edit})", self.isa),
            None => write!(f, "{} (tract's probe)", self.isa),
        }
    }
}

/// Tell tract which features it may use, process-wide. tract probes once,
/// at the first model it loads, so this runs before that; a later call that
/// would change the answer fails instead of doing nothing. `TRACT_CPU_ISA`
/// in the environment wins over this, as tract reads it first.
pub fn set_cpu_features(features: &CpuFeatures) -> Result<CpuChoice, CpuFeaturesError> {
    if let Some(env) = std::env::var(KNOB).ok().filter(|v| !v.trim().is_empty()) {
        return Ok(CpuChoice {
            isa: format!("{:?}", native()),
            edit: Some(format!("{KNOB}={env} from the environment")),
        });
    }
    let edits = match features {
        CpuFeatures::Auto => auto_edits(),
        CpuFeatures::Native => vec![],
        CpuFeatures::Edit(edits) => edits.clone(),
    };
    // Set even when empty, so that a process cannot run with two answers:
    // tract refuses a second, different value, and the check below catches
    // a probe made before the first.
    let value = knob_value(&edits);
    set_config_global(KNOB, &value).map_err(|e| CpuFeaturesError::Twice(e.to_string()))?;
    let isa = native();
    if edits.iter().any(|e| isa.has(e.feature) != e.add) {
        return Err(CpuFeaturesError::TooLate {
            isa: format!("{isa:?}"),
        });
    }
    Ok(CpuChoice {
        isa: format!("{isa:?}"),
        edit: (!value.is_empty()).then(|| format!("{value}, models.cpu_features = {features}")),
    })
}

/// "auto": AVX-512 off on an AMD core whose 512-bit FMAs take one unit.
#[cfg(target_arch = "x86_64")]
fn auto_edits() -> Vec<FeatureEdit> {
    use tract_linalg::x86_64::fma_width::avx512_fma_units;
    // tract's probe times VNNI instructions; without VNNI it answers 1
    // untimed, which is no evidence either way.
    let probed =
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vnni");
    if probed && is_amd() && avx512_fma_units() == 1 {
        vec![FeatureEdit {
            add: false,
            feature: Isa::X86_64Avx512f,
        }]
    } else {
        vec![]
    }
}

#[cfg(target_arch = "x86_64")]
fn is_amd() -> bool {
    let id = std::arch::x86_64::__cpuid(0);
    let vendor: Vec<u8> = [id.ebx, id.edx, id.ecx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    vendor == b"AuthenticAMD"
}

#[cfg(not(target_arch = "x86_64"))]
fn auto_edits() -> Vec<FeatureEdit> {
    vec![]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_parses_to_what_it_says_and_prints_back() {
        assert_eq!("auto".parse(), Ok(CpuFeatures::Auto));
        assert_eq!(" native ".parse(), Ok(CpuFeatures::Native));
        let (spec, removed, added) = if cfg!(target_arch = "x86_64") {
            ("-avx512f,+fma", Isa::X86_64Avx512f, Isa::X86_64Fma)
        } else {
            ("-fp16,+dotprod", Isa::Aarch64Fp16, Isa::Aarch64DotProd)
        };
        let parsed: CpuFeatures = spec.parse().unwrap();
        let edit = |add, feature| FeatureEdit { add, feature };
        assert_eq!(
            parsed,
            CpuFeatures::Edit(vec![edit(false, removed), edit(true, added)])
        );
        assert_eq!(parsed.to_string(), spec);
    }

    #[test]
    fn a_bad_spec_says_what_is_wrong() {
        // Each wrong before any name is looked up, so on every architecture.
        for bad in ["", "avx512f", "-", "+", "-,", "off"] {
            let err = bad.parse::<CpuFeatures>().unwrap_err();
            assert!(matches!(err, CpuFeaturesError::Syntax(_)), "{bad:?}: {err}");
        }
        let err = "-avx513f".parse::<CpuFeatures>().unwrap_err();
        assert!(err.to_string().contains("avx513f"), "{err}");
        let arch = format!("-{}", std::env::consts::ARCH);
        let err = arch.parse::<CpuFeatures>().unwrap_err();
        assert!(matches!(err, CpuFeaturesError::NotAFeature(_)), "{err}");
        let twice = if cfg!(target_arch = "x86_64") {
            "-fma,+fma"
        } else {
            "-fp16,+fp16"
        };
        let err = twice.parse::<CpuFeatures>().unwrap_err();
        assert!(matches!(err, CpuFeaturesError::NamedTwice(_)), "{err}");
        let foreign = if cfg!(target_arch = "x86_64") {
            "-sve2"
        } else {
            "-avx512f"
        };
        let err = foreign.parse::<CpuFeatures>().unwrap_err();
        assert!(
            matches!(err, CpuFeaturesError::OtherArch { .. }),
            "{foreign}: {err}"
        );
    }
}
