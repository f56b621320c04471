//! What a finished (or stopped) run reports: `summary.json` in the run folder.

use crate::config::Config;
use crate::cost::Cost;
use crate::eval::knn::{self, KnnResult};
use serde::{Deserialize, Serialize};

/// The summary of a run (its fields in alphabetical order, as the file has always had them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Counted compute: backbone passes per image per step, the planned steps and images per step
    /// (absent in summaries of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    pub dataset: String,
    /// Epochs finished.
    pub epochs: usize,
    pub epochs_planned: usize,
    /// The last logged loss (None when no finite one was logged).
    pub final_loss: Option<f64>,
    /// View-1 images per second of training, data pipeline included.
    pub images_per_second: f64,
    /// The weights the run started from (`--init-from`), if not random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
    /// The last kNN evaluation, with its protocol.
    pub knn: Option<KnnSummary>,
    /// Both kNN readouts at the end of the run, whichever `knn` is: the pooled backbone features
    /// and the head output (absent in summaries of earlier versions, and for runs stopped early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_backbone: Option<KnnSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_head: Option<KnnSummary>,
    /// The machine the run (its last part, for a resumed run) trained on: CPU model, cores and
    /// the instruction-set flags speed depends on; absent in summaries of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Every machine that trained the run, in order, when a resume changed the machine class
    /// (absent otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<String>,
    pub method: String,
    /// "none", "unmix", "imix" or "mixco" (absent in summaries of earlier versions: see `unmix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_probe: Option<ProbeSummary>,
    /// Peak resident memory (VmHWM) of the process that wrote the summary: the last part of a
    /// resumed run; under `unmix compare`, whose one process trains every arm, also the arms before.
    pub peak_rss_mib: Option<f64>,
    pub seed: u64,
    /// Seconds spent in the epochs' training loops (data waits and the online probe included, kNN
    /// evaluations and checkpoints not), summed over every part of a resumed run: the run's
    /// training time.
    pub train_seconds: f64,
    pub unmix: bool,
    /// Wall time of the pretraining call that wrote the summary, from loading the data to the
    /// summary, evaluations included: for a resumed run only its last part (its whole training
    /// time is `train_seconds`).
    pub wall_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnnSummary {
    pub k: usize,
    pub protocol: String,
    pub t: f64,
    pub top1: f64,
    pub top5: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeSummary {
    pub protocol: String,
    pub top1: f64,
}

/// The online probe's protocol sentence.
pub const PROBE_PROTOCOL: &str =
    "online linear probe: linear classifier trained during pretraining on detached backbone features of view 1 \
     (SGD, momentum 0.9, lr following the main schedule), top-1 on the test split with eval-mode features";

impl KnnSummary {
    pub fn new(cfg: &Config, r: &KnnResult) -> KnnSummary {
        KnnSummary { k: r.k, protocol: knn::protocol(cfg, r), t: r.t, top1: r.top1, top5: r.top5 }
    }
}

/// "CPU MODEL, N cores (family F model M); FLAGS" with the flags among avx2, fma, avx512f,
/// avx512_bf16, amx_bf16, amx_tile that this CPU has (every speed or accuracy figure names its
/// machine class). The scripts print the same line with scripts/machine.sh; a test holds the two
/// together. `UNMIX_CPUINFO` names a saved copy of /proc/cpuinfo to read instead, as for the
/// script (the tests play another machine class with it).
pub fn machine() -> String {
    let path = std::env::var_os("UNMIX_CPUINFO").unwrap_or_else(|| "/proc/cpuinfo".into());
    let info = std::fs::read_to_string(path).unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    machine_line(&info, cores)
}

/// `machine()` from the text of /proc/cpuinfo and a core count.
pub fn machine_line(cpuinfo: &str, cores: usize) -> String {
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let family = field("cpu family").unwrap_or_else(|| "?".into());
    let cpu_model = field("model").unwrap_or_else(|| "?".into());
    let flags = field("flags").unwrap_or_default();
    let have = flags_among(&flags, &["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]);
    format!("{model}, {cores} cores (family {family} model {cpu_model}); {have}")
}

/// Which of `wanted` the whitespace-separated `flags` hold, in `wanted`'s order: the flags part of
/// a machine line ("no avx2" when none).
fn flags_among(flags: &str, wanted: &[&str]) -> String {
    let have: Vec<&str> = wanted.iter().copied().filter(|f| flags.split_whitespace().any(|x| x == *f)).collect();
    if have.is_empty() {
        "no avx2".to_string()
    } else {
        have.join(" ")
    }
}

/// What a run's machines list holds for the steps of a checkpoint from before machines were
/// recorded.
pub const UNRECORDED_MACHINE: &str = "machine not recorded (a checkpoint of an earlier version)";

/// The class of a machine line (`machine()`'s, or an earlier version's without the family, model
/// and fma/amx_tile flags): the CPU model name, the core count and the flags that pick libtorch's
/// kernels (avx2, avx512f, avx512_bf16, amx_bf16). Runs repeat to the last digit within a class
/// (two 2-core Xeons of models 167 and 207 gave the same MoCo run, a Zen 4 and a Zen 5 EPYC the same
/// 50 steps), not across classes (the same run on the Zen 4 leaves the Xeon's loss in the fourth
/// digit by step 10), so the arms of a comparison are paired on one class.
pub fn machine_class(line: &str) -> String {
    let Some((head, flags)) = line.rsplit_once("; ") else {
        return line.to_string(); // not a machine line (UNRECORDED_MACHINE, a hand-written name): itself
    };
    let flags = if flags == "no avx2" { "" } else { flags };
    let head = match (head.rfind(" (family "), head.ends_with(')')) {
        (Some(i), true) => &head[..i],
        _ => head,
    };
    format!("{head}; {}", flags_among(flags, &["avx2", "avx512f", "avx512_bf16", "amx_bf16"]))
}

/// Peak resident memory of this process in MiB (Linux), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::{machine_class, machine_line};
    use std::path::Path;
    use std::process::Command;

    /// Excerpts of real /proc/cpuinfo files: the reviewer's class (AMD EPYC, AVX2 only), an
    /// AMX Xeon, and an Arm server whose kernel writes neither "model name" nor "flags".
    const EPYC: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n\
        model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx fma avx2 bmi2 sha_ni\n\n\
        processor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
    const XEON: &str = "cpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n\
        flags\t\t: fpu avx2 fma avx512f avx512bw avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8\n";
    const ARM: &str = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes\nCPU part\t: 0xd0c\n";

    #[test]
    fn machine_line_names_model_cores_family_and_the_flags_that_matter() {
        assert_eq!(machine_line(EPYC, 2), "AMD EPYC 7B13, 2 cores (family 25 model 1); avx2 fma");
        assert_eq!(
            machine_line(XEON, 8),
            "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz, 8 cores (family 6 model 143); \
             avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile"
        );
        let arm = machine_line(ARM, 4);
        assert_eq!(arm, format!("{}, 4 cores (family ? model ?); no avx2", std::env::consts::ARCH));
    }

    /// Lines of this version and of earlier ones (no family and model, no fma or amx_tile) name
    /// one class when model name, cores and kernel flags agree; another vendor or flag set is
    /// another class.
    #[test]
    fn machine_class_ignores_family_model_and_companion_flags() {
        let new =
            "Intel(R) Xeon(R) Processor, 2 cores (family 6 model 167); avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile";
        let old = "Intel(R) Xeon(R) Processor, 2 cores; avx2 avx512f avx512_bf16 amx_bf16";
        assert_eq!(machine_class(new), old);
        assert_eq!(machine_class(old), old);
        assert_eq!(
            machine_class("Intel(R) Xeon(R) Processor, 2 cores (family 6 model 207); avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile"),
            old
        );
        let zen4 = machine_class("AMD EPYC, 2 cores (family 25 model 17); avx2 fma avx512f avx512_bf16");
        assert_eq!(zen4, "AMD EPYC, 2 cores; avx2 avx512f avx512_bf16");
        assert_ne!(zen4, old);
        assert_ne!(machine_class("AMD EPYC, 4 cores (family 25 model 17); avx2 fma avx512f avx512_bf16"), zen4);
        assert_eq!(machine_class(&machine_line(EPYC, 2)), "AMD EPYC 7B13, 2 cores; avx2");
        let arm = machine_line(ARM, 4);
        assert_eq!(machine_class(&arm), format!("{}, 4 cores; no avx2", std::env::consts::ARCH));
        assert_eq!(machine_class(super::UNRECORDED_MACHINE), super::UNRECORDED_MACHINE);
        assert_eq!(machine_class("unknown"), "unknown");
    }

    /// The scripts' machine line (scripts/machine.sh) is the binary's, on the fixtures and here.
    #[test]
    fn scripts_machine_sh_prints_the_same_line() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("unmix-machine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |cpuinfo: Option<&Path>| {
            let mut cmd = Command::new("bash");
            cmd.arg(root.join("scripts/machine.sh"));
            if let Some(p) = cpuinfo {
                cmd.env("UNMIX_CPUINFO", p);
            }
            let out = cmd.output().expect("bash runs scripts/machine.sh");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim_end().to_string()
        };
        // The script counts cores with nproc (affinity); the binary with available_parallelism,
        // which also reads cgroup quotas, so the count is taken from the script's line.
        let cores = |line: &str| -> usize {
            let before = line.split(" cores (").next().unwrap();
            before.rsplit(", ").next().unwrap().parse().unwrap()
        };
        for (name, text) in [("epyc", EPYC), ("xeon", XEON), ("arm", ARM)] {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            let line = run(Some(&p));
            assert_eq!(line, machine_line(text, cores(&line)), "fixture {name}");
        }
        let here = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let line = run(None);
        assert_eq!(line, machine_line(&here, cores(&line)));
        std::fs::remove_dir_all(&dir).ok();
    }
}
