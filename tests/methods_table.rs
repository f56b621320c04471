//! scripts/methods-table.sh, run against a stand-in binary (UNMIX_BIN) that records its calls and
//! writes the summaries the script reads: the budget each method gets, the resume of an
//! interrupted run, the read-back of finished ones, and the table built from the summaries.

use std::path::Path;
use std::process::{Command, Output};

/// A stand-in for `unmix`: appends its arguments to `calls`; `knn` prints a kNN line; `pretrain`
/// makes the run folder with a checkpoint and, unless it is a new + Un-Mix run while `STOP` exists
/// (an interruption after the first checkpoint, exit 130), a summary whose kNN top-1 is 80 for
/// the base arm and 81 for + Un-Mix.
const STAND_IN: &str = r#"#!/usr/bin/env bash
here=$(dirname "$0")
echo "$*" >> "$here/calls"
case "$1" in
  knn) echo "kNN top-1: 70.12% (stand-in)" ;;
  pretrain)
    out=""; resume=0; prev=""
    for a in "$@"; do [ "$prev" = --out ] && out=$a; [ "$a" = --resume ] && resume=1; prev=$a; done
    if [ $resume = 0 ] && [ -e "$out" ]; then echo "error: $out exists" >&2; exit 1; fi
    mkdir -p "$out/checkpoints"; touch "$out/checkpoints/last.safetensors"
    case "$*" in *unmix.enabled=true*) knn=81 ;; *) knn=80 ;; esac
    if [ $resume = 0 ] && [ $knn = 81 ] && [ -e "$here/STOP" ]; then echo "interrupted" >&2; exit 130; fi
    if [ $resume = 1 ]; then knn=81; fi
    echo "{\"knn\": {\"top1\": $knn}, \"online_probe\": {\"top1\": 75.25}, \"images_per_second\": 300}" > "$out/summary.json" ;;
esac
"#;

fn methods_table(bin: &Path, out: &Path, methods: &str) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new("bash")
        .arg(root.join("scripts/methods-table.sh"))
        .arg("--out")
        .arg(out)
        .env("UNMIX_BIN", bin)
        .env("UNMIX_NO_INSTALL", "1")
        .env("METHODS", methods)
        .output()
        .expect("bash runs scripts/methods-table.sh")
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls")).unwrap_or_default().lines().map(String::from).collect()
}

#[test]
fn an_interrupted_table_resumes_and_a_finished_one_is_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("unmix");
    std::fs::write(&bin, STAND_IN).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = tmp.path().join("table");
    // First start: moco's + Un-Mix run is interrupted after its first checkpoint.
    std::fs::write(tmp.path().join("STOP"), "").unwrap();
    let o = methods_table(&bin, &out, "moco swav");
    assert!(!o.status.success(), "an interrupted run stops the script");
    assert!(String::from_utf8_lossy(&o.stderr).contains("moco unmix=true failed"), "{o:?}");
    let first = calls(tmp.path());
    assert_eq!(first.len(), 3, "random-init kNN, base, + Un-Mix: {first:#?}");
    // The budget of the protocol's rules for MoCo (SGD): batch 64, 2 groups of 32, lr x 64/256.
    for set in
        ["data.limit=20000", "train.epochs=3", "train.batch_size=64", "model.bn_splits=2", "eval.features=\"backbone\""]
    {
        assert!(first[1].contains(&format!("--set {set}")), "{set} missing from {}", first[1]);
    }
    assert!(first[1].contains("--set train.lr=0.0075"), "0.03 x 64/256: {}", first[1]);
    // Second start: the interrupted run resumes, the finished ones are not trained again.
    std::fs::remove_file(tmp.path().join("STOP")).unwrap();
    let o = methods_table(&bin, &out, "moco swav");
    assert!(o.status.success(), "{o:?}");
    let second = &calls(tmp.path())[3..];
    assert_eq!(second[0], format!("pretrain --resume --out {} --quiet", out.join("moco-unmix-true").display()));
    assert!(second[1].starts_with("knn --random-init --config configs/fmnist-swav-unmix.toml"), "{second:#?}");
    assert_eq!(second.len(), 4, "resume, then swav's three calls: {second:#?}");
    // SwAV keeps its lr 0.6 (no --set train.lr) and freezes its prototypes for 6000 images.
    assert!(
        !second[2].contains("train.lr=") && second[2].contains("method.freeze_prototypes_steps=93"),
        "{}",
        second[2]
    );
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(table.contains("| moco | 70.12 | 80.00 | 81.00 | +1.00 | 75.25 | 75.25 | 300.00 | 300.00 |"), "{table}");
    assert!(table.contains("| swav | 70.12 | 80.00 | 81.00 | +1.00 |"), "{table}");
    // Third start: everything is read back, nothing runs, the table is the same.
    let o = methods_table(&bin, &out, "moco swav");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(calls(tmp.path()).len(), 7, "no call once every run has finished");
    assert_eq!(std::fs::read_to_string(out.join("table.md")).unwrap(), table);
    assert_eq!(std::fs::read_to_string(out.join("machine.txt")).unwrap().matches("started ").count(), 3);
}
