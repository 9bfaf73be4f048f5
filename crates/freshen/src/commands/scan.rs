//! `freshen scan IMAGE`

use anyhow::{Context, Result};
use freshen_apt::{Fetcher, HostInfo, ScanOptions};
use freshen_image::{ImageRef, Interest};

use crate::output::{self, Format, Report};
use freshen_patch::View;

#[derive(clap::Args)]
pub struct Args {
    /// The image: docker://REGISTRY/REPO[:TAG|@DIGEST], docker-daemon:NAME[:TAG], oci:DIR[:TAG],
    /// docker-archive:FILE[:NAME:TAG] or dir:PATH (dir:/ is the host).
    image: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Which updates count: all pending updates, or only security updates.
    #[arg(long, value_enum, default_value_t = Only::All)]
    only: Only,
    /// Also read each update's changelog: the CVE ids it fixes and when the fix was published.
    #[arg(long)]
    changelogs: bool,
    /// Skip any source that fails (unreachable, no or badly signed Release, index not matching
    /// its hash, unsupported URI scheme) with a warning naming it, as apt does, instead of failing.
    #[arg(long)]
    ignore_unreachable: bool,
    #[command(flatten)]
    common: super::transport::ImageArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    All,
    Security,
}

pub fn run(args: Args) -> Result<u8> {
    let started = std::time::Instant::now();
    let reference = ImageRef::parse(&args.image)?;
    let platform = args.common.platform();
    let cache = args.common.cache();
    let interest = Interest { paths: freshen_apt::system::PATHS, keep_versions: freshen_apt::system::VERSIONED_PATHS };
    let fetcher = Fetcher::new(cache, &args.common.http_policy()?)?;
    let (image, view) = match &reference {
        ImageRef::Dir { path } => {
            let view = View(freshen_image::read_dir_files(path, &interest)?);
            freshen_patch::attach_local_repos(&fetcher, &view, |i| freshen_image::read_dir_files(path, i))?;
            (None, view)
        }
        _ => {
            let transport = args.common.transport(crate::progress::reporter())?;
            let source = freshen_image::open(&reference, &platform, &transport)?;
            let view = View(freshen_image::read_image_files(source.as_ref(), &interest)?);
            freshen_patch::attach_local_repos(&fetcher, &view, |i| freshen_image::read_image_files(source.as_ref(), i))?;
            (Some(source.image().clone()), view)
        }
    };
    let read_time = started.elapsed();
    let now = chrono::Utc::now();
    let opts = ScanOptions { now, ignore_unreachable: args.ignore_unreachable, changelogs: args.changelogs };
    let scan = freshen_apt::scan(&fetcher, &view, &opts).with_context(|| format!("scanning {reference}"))?;
    if std::env::var_os("FRESHEN_TIMING").is_some() {
        eprintln!("timing: read image {:?}, archives and plan {:?}", read_time, started.elapsed() - read_time);
    }
    let rows: Vec<_> = scan
        .updates
        .iter()
        .enumerate()
        .filter(|(_, u)| args.only == Only::All || u.security)
        .map(|(i, u)| (u, scan.fixes.get(i)))
        .collect();
    let host = matches!(reference, ImageRef::Dir { .. }).then(|| HostInfo::read(&view, &scan.system));
    let report = Report {
        reference: reference.to_string(),
        image: image.as_ref(),
        scan: &scan,
        rows: &rows,
        host,
        now,
        requests: fetcher.requests(),
        elapsed: started.elapsed(),
        changelogs: args.changelogs,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Text => output::text(&report, &mut out)?,
        Format::Json => output::json(&report, &mut out)?,
    }
    for w in &scan.offers.warnings {
        eprintln!("warning: {}", freshen_image::escape(w));
    }
    // Updates kept back by a dpkg hold or by phasing are listed but do not
    // make the scan fail: the image's owner chose them, as apt would.
    Ok(if rows.iter().all(|(u, _)| u.deliberately_held()) { crate::exit::CLEAN } else { crate::exit::PENDING })
}
