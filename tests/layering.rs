//! The layering lib.rs states, kept true: every module of the library imports only modules of
//! earlier layers (test code inside a file is not counted; comments are skipped).

use std::collections::BTreeMap;
use std::path::Path;

const LAYERS: &[&[&str]] = &[
    &["alloc", "console", "fault", "ffi"],
    &["precision", "dist", "mix", "model", "optim", "checkpoint", "events"],
    &["method"],
    &["config"],
    &["data", "cost"],
    &["build", "init"],
    &["eval"],
    &["train"],
    &["report", "export"],
    &["compare", "bench"],
];

fn layer(module: &str) -> Option<usize> {
    // `say!` is exported at the crate root by the console module.
    let module = if module == "say" { "console" } else { module };
    LAYERS.iter().position(|l| l.contains(&module))
}

/// `crate::name` references in the non-test, non-comment code of a file.
fn references(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut refs = Vec::new();
    for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                refs.push(name);
            }
        }
    }
    refs
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_module_imports_only_earlier_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = 0;
    for f in all {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        // The binary (main.rs and its cli/ modules) stands above every layer: it reaches the
        // library as `unmix::`, never as `crate::`.
        if rel == "lib.rs" || rel == "main.rs" || rel.starts_with("cli/") {
            continue;
        }
        let module = rel.split(['/', '.']).next().unwrap().to_string();
        let own = layer(&module)
            .unwrap_or_else(|| panic!("src/{rel}: module `{module}` is in no layer of tests/layering.rs (and lib.rs)"));
        for r in references(&std::fs::read_to_string(&f).unwrap()) {
            if r == module {
                continue;
            }
            seen += 1;
            match layer(&r) {
                Some(l) if l < own => {}
                _ => wrong.entry(format!("src/{rel} (layer {})", own + 1)).or_default().push(r),
            }
        }
    }
    assert!(seen > 50, "only {seen} references found: the scan is broken");
    assert!(wrong.is_empty(), "imports of the same or a later layer: {wrong:#?}");
}

#[test]
fn the_scan_sees_imports_and_skips_comments_and_tests() {
    let text = "use crate::model::X;\n// crate::train is only mentioned\nfn f() { crate::eval::knn::g(); }\n#[cfg(test)]\nmod tests { use crate::report; }";
    assert_eq!(references(text), vec!["model", "eval"]);
}
