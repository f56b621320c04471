//! `unmix bench` (benchmarks that print figures as JSON) and `unmix selftest`.

use super::args::{BenchCommand, SelftestArgs};
use super::outputs::parse_precision;
use anyhow::Result;
use unmix::bench::{model, pipeline, scale};
use unmix::say;

/// `unmix bench ...`: runs the benchmark and prints its figures.
pub fn bench(command: BenchCommand) -> Result<i32> {
    match command {
        BenchCommand::Pipeline(a) => {
            tch::set_num_threads(1);
            let args = pipeline::PipelineArgs {
                source: &a.source,
                size: a.size,
                images: a.images,
                batch: a.batch,
                workers: a.workers,
                seed: 0,
                in_memory: a.in_memory,
            };
            say!("{}", pipeline::run(&args)?);
        }
        BenchCommand::Step(a) => {
            let args = model::StepArgs {
                model: &a.model,
                batch: a.batch,
                precision: parse_precision(&a.precision)?,
                steps: a.steps,
                warmup: a.warmup,
                threads: a.threads,
                set: &a.set,
                profile: a.profile.as_deref(),
            };
            say!("{}", model::step(&args)?);
        }
        BenchCommand::Loop(a) => {
            let d = a.run.data.map(|d| d.display().to_string());
            let p = parse_precision(&a.precision)?;
            say!("{}", model::training_loop(d.as_deref(), a.steps, a.run.workers, a.run.threads, p, &a.set)?);
        }
        BenchCommand::Peak(a) => say!("{}", model::peak(a.threads, a.seconds)?),
        BenchCommand::Folder(a) => {
            let args =
                scale::FolderArgs { root: &a.root, size: a.size, batch: a.batch, steps: a.steps, workers: a.workers };
            say!("{}", scale::folder(&args)?);
        }
        BenchCommand::KnnBank(a) => say!("{}", scale::knn_bank(a.bank, a.queries, a.dim, a.classes, a.threads)?),
        BenchCommand::ScalePlot(a) => {
            scale::plot(&a.record, &a.out, &a.machine)?;
            say!("wrote {}/scale-{{time,memory,loader}}.png and .svg", a.out.display());
        }
        BenchCommand::Knn(a) => {
            let d = a.run.data.map(|d| d.display().to_string());
            say!("{}", model::knn(d.as_deref(), a.run.workers, a.run.threads)?);
        }
    }
    Ok(0)
}

/// `unmix selftest`.
pub fn selftest(a: SelftestArgs) -> Result<i32> {
    say!("{:#}", unmix::bench::selftest::run(&a.device)?);
    Ok(0)
}
