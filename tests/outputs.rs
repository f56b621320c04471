//! Outputs other tools read: TensorBoard's own Python reader reads the event files of a short run
//! (resumed once), metrics.csv holds metrics.jsonl's table, and the report's pictures exist and
//! decode.

mod common;

use std::path::Path;
use std::process::Command;

fn run(args: &[String]) {
    let o =
        Command::new(env!("CARGO_BIN_EXE_unmix")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn tensorboard_reads_the_event_files_and_the_csv_matches_the_jsonl() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // The tiny fmnist run of the reliability tests, with kNN every epoch.
    let mut a = common::tiny(&["eval.knn_every=1"]);
    a.extend(["--out".into(), dir.display().to_string()]);
    let mut first = a.clone();
    first.extend(["--until-epoch".into(), "1".into()]);
    run(&first);
    run(&["pretrain".into(), "--quiet".into(), "--resume".into(), "--out".into(), dir.display().to_string()]);

    // TensorBoard's reader, over both event files of the run (before and after the resume).
    let script = format!(
        r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator({tb:?}); acc.Reload()
tags = acc.Tags()["scalars"]
print(json.dumps({{t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags}}))
"#,
        tb = dir.join("tensorboard").display().to_string()
    );
    let o = Command::new(root.join(".venv/bin/python"))
        .args(["-c", &script])
        .output()
        .expect("the project's .venv has python");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let scalars: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let steps: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("steps.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let loss = scalars["train/loss"].as_array().unwrap();
    assert_eq!(loss.len(), steps.len(), "one loss per logged step, each once");
    for (tb, js) in loss.iter().zip(&steps) {
        assert_eq!(tb[0].as_u64(), js["step"].as_u64());
        let (a, b) = (tb[1].as_f64().unwrap(), js["loss"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-6 * b.abs(), "{a} vs {b}");
    }
    for tag in ["train/lr", "eval/knn_top1", "eval/online_probe_top1", "epoch/images_per_second"] {
        assert!(scalars[tag].as_array().is_some_and(|v| !v.is_empty()), "{tag} missing: {scalars}");
    }
    assert_eq!(scalars["eval/knn_top1"].as_array().unwrap().len(), 2);

    // metrics.csv: the header and one row per epoch, with metrics.jsonl's values.
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,step,loss,lr,images_per_second,epoch_seconds,data_wait_seconds,knn_top1,knn_top5,online_probe_top1"
    );
    let metrics: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1 + metrics.len());
    for (row, m) in lines[1..].iter().zip(&metrics) {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[0].parse::<u64>().unwrap(), m["epoch"].as_u64().unwrap());
        assert_eq!(cells[7].parse::<f64>().unwrap(), m["knn_top1"].as_f64().unwrap());
    }

    // The report's pictures: PNG and SVG, decodable, of the size drawn.
    for name in ["loss", "lr", "accuracy", "embeddings"] {
        let png = std::fs::read(dir.join(format!("{name}.png"))).unwrap();
        let img = image::load_from_memory(&png).unwrap_or_else(|e| panic!("{name}.png: {e}"));
        assert!(img.width() >= 800 && img.height() >= 500, "{name}.png is {}x{}", img.width(), img.height());
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{name}.svg");
    }
}
