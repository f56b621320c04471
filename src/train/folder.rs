//! The run folder: one writer at a time (an advisory lock on `OUT/.lock`, held for the life of the
//! process), how a run starts in it (new, resumed, or already finished), and what a resume may
//! change of the run's config.

use crate::checkpoint::{self, Meta, RUN_CHECKPOINT};
use crate::config::Config;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The lock file inside a run folder; it holds the writer's pid and command line.
pub const LOCK: &str = ".lock";

/// Keys a `--resume` may change, with why: the length of the run, how often it logs and
/// evaluates, how the evaluation reads its features, where the same images live, and how fast
/// the data arrive. Every other key changes what a step computes or sees and is refused.
pub const RESUMABLE_KEYS: [&str; 17] = [
    "train.epochs",
    "train.steps",
    "train.log_every",
    "eval.knn_every",
    "eval.knn_k",
    "eval.knn_t",
    "eval.batch_size",
    "eval.features",
    "eval.knn_metric",
    "data.root",
    "data.eval_root",
    "data.eval_resize",
    "data.eval_crop",
    "data.workers",
    "data.prefetch",
    "threads",
    "device",
];

/// A run folder held by this process (rank 0 of a run); the lock goes with it, or with a kill.
pub struct RunFolder {
    pub dir: PathBuf,
    /// The open lock file (the lock lives as long as it).
    _lock: Option<std::fs::File>,
    /// Whether this process created the folder (removed again if nothing else was put there).
    created: bool,
}

/// How a run starts in its folder.
pub enum Start {
    /// A new run (the folder empty or missing, or its contents moved aside with --force).
    New,
    /// Continues from the checkpoint (inside an epoch, or at an epoch's end).
    Resume { tensors: Vec<(String, Tensor)>, meta: Box<Meta> },
    /// Every epoch trained: the records are repaired and finished, nothing is trained.
    Finished { tensors: Vec<(String, Tensor)>, meta: Box<Meta> },
}

impl RunFolder {
    /// Takes the folder's lock (creating the folder) when `writer`; a process that writes
    /// nothing (another rank of a multi-process run) only names it.
    pub fn open(dir: &Path, writer: bool) -> Result<RunFolder> {
        if !writer {
            return Ok(RunFolder { dir: dir.to_path_buf(), _lock: None, created: false });
        }
        let created = !dir.exists();
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create run folder {}", dir.display()))?;
        let path = dir.join(LOCK);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {} (is the folder writable?)", path.display()))?;
        // SAFETY: flock on an open file descriptor owned by `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            bail!(
                "{} is in use by another unmix process ({}); wait for it to end, stop it, or give another --out",
                dir.display(),
                match holder.split_once(' ') {
                    Some((pid, command)) => format!("pid {pid}, command: {command}"),
                    None => "pid unknown".to_string(),
                }
            );
        }
        let me = format!("{} {}\n", std::process::id(), std::env::args().collect::<Vec<_>>().join(" "));
        file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(me.as_bytes())).ok();
        Ok(RunFolder { dir: dir.to_path_buf(), _lock: Some(file), created })
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join(RUN_CHECKPOINT)
    }

    /// Whether the folder holds anything besides its lock.
    pub fn in_use(&self) -> bool {
        std::fs::read_dir(&self.dir).is_ok_and(|d| d.flatten().any(|e| e.file_name() != LOCK))
    }

    /// Moves the folder's contents (not its lock) to `DIR.old-<seconds since 1970>`, never
    /// deleting them.
    pub fn move_aside(&self) -> Result<PathBuf> {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut name = self.dir.as_os_str().to_owned();
        name.push(format!(".old-{secs}"));
        let to = PathBuf::from(name);
        std::fs::create_dir(&to).with_context(|| format!("cannot create {} to move the old run into", to.display()))?;
        for e in std::fs::read_dir(&self.dir)?.flatten().filter(|e| e.file_name() != LOCK) {
            std::fs::rename(e.path(), to.join(e.file_name()))
                .with_context(|| format!("cannot move {} aside to {}", e.path().display(), to.display()))?;
        }
        Ok(to)
    }

    /// How the run starts: `resume` continues from the checkpoint (refused without one); a new
    /// run needs an empty folder, or `force` to move the old contents aside.
    pub fn start(&self, cfg: &Config, resume: bool, force: bool) -> Result<Start> {
        let ckpt = self.checkpoint();
        if !resume {
            if self._lock.is_some() && self.in_use() && !force {
                bail!(
                    "{} already holds files (another run?); continue that run with --resume, give another --out, or add --force to move it aside (nothing is deleted)",
                    self.dir.display()
                );
            }
            return Ok(Start::New);
        }
        no_checkpoint(&self.dir, &ckpt)?;
        let (tensors, meta) =
            checkpoint::load(&ckpt).with_context(|| format!("cannot resume the run in {}", self.dir.display()))?;
        check_resume(cfg, &meta, &ckpt)?;
        checkpoint::check_finite(&tensors, &ckpt)?;
        let meta = Box::new(meta);
        Ok(if meta.epoch >= cfg.train.epochs && meta.batch_in_epoch == 0 {
            Start::Finished { tensors, meta }
        } else {
            Start::Resume { tensors, meta }
        })
    }

    /// The run's resolved config beside its checkpoint, written whole or not at all.
    pub fn write_config(&self, cfg: &Config) -> Result<()> {
        let path = self.dir.join("config.toml");
        checkpoint::write_atomic(&path, cfg.to_toml().as_bytes())?;
        crate::fault::after("config");
        Ok(())
    }
}

impl Drop for RunFolder {
    /// A folder this process created and left holding only its lock (the run was refused
    /// before writing anything) is removed again.
    fn drop(&mut self) {
        if self.created && self._lock.is_some() && !self.in_use() {
            let _ = std::fs::remove_file(self.dir.join(LOCK));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Refuses to resume a run that has no checkpoint `ckpt` yet.
fn no_checkpoint(dir: &Path, ckpt: &Path) -> Result<()> {
    if !ckpt.exists() {
        bail!(
            "cannot resume the run in {}: it has no checkpoint {} (a run writes its first at the end of epoch 1, or when \
             interrupted); start it again with --force",
            dir.display(),
            ckpt.display()
        );
    }
    Ok(())
}

/// A config as `key.path -> value` (arrays and values in TOML's text).
fn flatten(cfg: &Config) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out);
                }
            }
            v => {
                out.insert(prefix.to_string(), v.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", &toml::Value::try_from(cfg).expect("a config always serializes"), &mut out);
    out
}

/// The keys whose values differ between two configs: (key, before, after), "unset" for a key
/// one of them lacks.
pub fn changed_keys(before: &Config, after: &Config) -> Vec<(String, String, String)> {
    let (a, b) = (flatten(before), flatten(after));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |m: &BTreeMap<String, String>, k: &String| m.get(k).cloned().unwrap_or_else(|| "unset".into());
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).map(|k| (k.clone(), show(&a, k), show(&b, k))).collect()
}

/// The changes among `changed` that a resume may not make, as "key (was X, now Y)".
fn refused(changed: &[(String, String, String)]) -> Vec<String> {
    changed
        .iter()
        .filter(|(k, _, _)| !RESUMABLE_KEYS.contains(&k.as_str()))
        .map(|(k, a, b)| format!("{k} (was {a}, now {b})"))
        .collect()
}

/// What `--resume` may change: the keys of [`RESUMABLE_KEYS`]; never the length below what the
/// checkpoint has trained.
pub fn check_resume(cfg: &Config, meta: &Meta, ckpt: &Path) -> Result<()> {
    let old = Config::from_saved_toml(&meta.config, &format!("the config saved in {}", ckpt.display()), &[])?;
    let bad = refused(&changed_keys(&old, cfg));
    if !bad.is_empty() {
        bail!(
            "--resume cannot change {} of the run in {}: they change what a step computes or sees; start a new run with another --out \
             (a resume may change only {})",
            bad.join(", "),
            ckpt.parent().and_then(Path::parent).unwrap_or(ckpt).display(),
            RESUMABLE_KEYS.join(", ")
        );
    }
    if cfg.train.epochs < meta.epoch {
        bail!(
            "--set train.epochs={}: the run has already trained {} epochs; a resume can only keep or extend its length",
            cfg.train.epochs,
            meta.epoch
        );
    }
    if cfg.train.steps > 0 && (cfg.train.steps as u64) < meta.step {
        bail!(
            "--set train.steps={}: the run has already trained {} steps; a resume can only keep or extend its length",
            cfg.train.steps,
            meta.step
        );
    }
    Ok(())
}

/// The config a `--resume` of the run in `dir` trains with: the checkpoint's own, with the
/// user's edits of the run's config.toml and then `sets` on top. Edits and sets of keys outside
/// [`RESUMABLE_KEYS`] are refused, naming them and where they came from; the accepted edits are
/// returned as lines to print.
pub fn resume_config(dir: &Path, sets: &[String]) -> Result<(Config, Vec<String>)> {
    let ckpt = dir.join(RUN_CHECKPOINT);
    no_checkpoint(dir, &ckpt)?;
    let meta = checkpoint::read_meta(&ckpt).with_context(|| format!("cannot resume the run in {}", dir.display()))?;
    let saved = Config::from_saved_toml(&meta.config, &format!("the config saved in {}", ckpt.display()), &[])?;
    // The run's config.toml, edited by hand or not.
    let file = dir.join("config.toml");
    let base = match std::fs::read_to_string(&file) {
        Ok(text) => Config::from_saved_toml(&text, &file.display().to_string(), &[])?,
        Err(_) => saved.clone(),
    };
    let edits = changed_keys(&saved, &base);
    let bad = refused(&edits);
    if !bad.is_empty() {
        bail!(
            "{} was edited: {} cannot change on --resume (they change what a step computes or sees); undo the edit, or start a new \
             run with --config (a resume may change only {})",
            file.display(),
            bad.join(", "),
            RESUMABLE_KEYS.join(", ")
        );
    }
    let cfg = Config::from_saved_toml(&base.to_toml(), &file.display().to_string(), sets)?;
    let bad = refused(&changed_keys(&base, &cfg));
    if !bad.is_empty() {
        bail!(
            "--resume cannot change {} (--set): they change what a step computes or sees; start a new run with another --out \
             (a resume may change only {})",
            bad.join(", "),
            RESUMABLE_KEYS.join(", ")
        );
    }
    let notes =
        edits.iter().map(|(k, a, b)| format!("applied the edit of {}: {k} = {b} (was {a})", file.display())).collect();
    Ok((cfg, notes))
}
