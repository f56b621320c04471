//! scripts/seed-table.sh --table: the README's seed table is what the committed run records say,
//! and a pair whose backbone kNN was never read is named and left out of that row, not the row.

use std::path::Path;
use std::process::Command;

fn table(out: &Path, only: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new("bash")
        .arg(root.join("scripts/seed-table.sh"))
        .args(["--table", "--out"])
        .arg(out)
        .args(["--only", only])
        .output()
        .expect("bash runs scripts/seed-table.sh");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// The first line of the table output that starts with `start`.
fn row<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no row {start:?} in\n{text}"))
}

#[test]
fn the_swav_rows_come_from_the_committed_records() {
    let records = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/fmnist-seeds");
    let t = table(&records, "swav");
    // Head output: three seeds' pairs (0 and 1 on the Xeon, 2 on the Zen 4 EPYC).
    assert!(
        row(&t, "| swav |")
            .starts_with("| swav | 10 | 0, 1, 2 | 80.16 +- 0.23 | 79.71 +- 0.33 | -0.98 / -0.28 / -0.10 | -0.45 |"),
        "{t}"
    );
    // Backbone features: only seed 2's pair was read.
    assert!(
        row(&t, "| swav (seeds 0, 1: not read) |")
            .starts_with("| swav (seeds 0, 1: not read) | 10 | 2 | 80.77 | 81.35 | +0.58 | +0.58 |"),
        "{t}"
    );
}

#[test]
fn a_pair_without_backbone_knn_is_named_and_the_others_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/fmnist-seeds/moco");
    let st = Command::new("cp").arg("-a").arg(&src).arg(tmp.path()).status().unwrap();
    assert!(st.success());
    std::fs::remove_file(tmp.path().join("moco/unmix-seed1/knn-backbone.txt")).unwrap();
    let t = table(tmp.path(), "moco");
    // The head-output row keeps all three seeds; the backbone row keeps seeds 0 and 2.
    assert!(
        row(&t, "| moco |")
            .starts_with("| moco | 10 | 0, 1, 2 | 83.59 +- 0.11 | 84.26 +- 0.23 | +0.69 / +0.85 / +0.48 | +0.67 |"),
        "{t}"
    );
    assert!(
        row(&t, "| moco (seed 1: not read) |").starts_with(
            "| moco (seed 1: not read) | 10 | 0, 2 | 82.36 +- 0.06 | 83.12 +- 0.11 | +0.72 / +0.79 | +0.76 |"
        ),
        "{t}"
    );
    for name in ["unmix-seed0", "unmix-seed2", "base-seed0", "base-seed1", "base-seed2"] {
        std::fs::remove_file(tmp.path().join("moco").join(name).join("knn-backbone.txt")).unwrap();
    }
    let t = table(tmp.path(), "moco");
    assert!(t.contains("| moco | | | (backbone kNN not read for seeds 0, 1, 2) |"), "{t}");
}
