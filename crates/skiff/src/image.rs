//! `skiff image`: the node's images, as `crictl images` / `ctr images import` / `crictl rmi`
//! work on containerd's: `import FILE...` (OCI or docker-save archives, gzip or not),
//! `ls`, `rm NAME...`, `pull NAME` (through the node's registries.yaml). They act on the
//! store under `<data-dir>/agent/images-store` directly, so they work with or without a
//! running agent (the store's index is locked across processes).

use anyhow::{bail, Context, Result};
use skiff_runtime::image::{self, ImageRecord, Snapshots, Store};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DataDir {
    /// The node's data dir (the agent's or server's `--data-dir`).
    #[arg(long, default_value = "/var/lib/skiff", env = "SKIFF_DATA_DIR")]
    pub data_dir: PathBuf,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum ImageCommand {
    /// Import image tarballs (OCI image layout or `docker save`, gzip-compressed or not).
    /// Imported images are never garbage-collected.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List the node's images (IMAGE, TAG, IMAGE ID, SIZE, as crictl images).
    #[command(alias = "list", alias = "images")]
    Ls {
        /// Only the image IDs.
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Remove images by name, ID or digest (a name only untags while others remain).
    #[command(alias = "rmi", alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Pull an image from its registry (mirrors, auth and TLS from
    /// `<data-dir>/agent/registries.yaml`).
    Pull {
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

fn open(dir: &DataDir) -> Result<Store> {
    let root = image::store_root(&dir.data_dir);
    Store::open(&root).with_context(|| {
        format!(
            "opening the image store {} (run as root or pass --data-dir)",
            root.display()
        )
    })
}

pub async fn run(args: ImageArgs) -> Result<()> {
    match args.command {
        ImageCommand::Import { files, dir } => {
            let store = open(&dir)?;
            let mut failed = 0;
            for f in &files {
                match image::import_archive(&store, f) {
                    Ok(images) if images.is_empty() => {
                        eprintln!("{}: no images in the archive", f.display());
                        failed += 1;
                    }
                    Ok(images) => {
                        for i in images {
                            let name = i.names.first().cloned().unwrap_or_else(|| "<none>".into());
                            println!("imported {name} ({})", i.id);
                        }
                    }
                    Err(e) => {
                        eprintln!("skiff: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} archives not imported", files.len());
            }
            Ok(())
        }
        ImageCommand::Ls { quiet, dir } => {
            let store = open(&dir)?;
            print!("{}", render_table(&store.list()?, quiet));
            Ok(())
        }
        ImageCommand::Rm { names, dir } => {
            let store = open(&dir)?;
            let mut failed = 0;
            for n in &names {
                match store.remove(n) {
                    Ok((rec, gone)) => {
                        if gone {
                            for t in &rec.names {
                                println!("Deleted: {t}");
                            }
                            if rec.names.is_empty() {
                                println!("Deleted: {}", rec.id);
                            }
                        } else {
                            println!(
                                "Untagged: {}",
                                image::normalize(n).unwrap_or_else(|_| n.clone())
                            );
                        }
                    }
                    Err(e) => {
                        eprintln!("skiff: {e}");
                        failed += 1;
                    }
                }
            }
            Snapshots::new(&store).gc()?;
            if failed > 0 {
                bail!("{failed} of {} images not removed", names.len());
            }
            Ok(())
        }
        ImageCommand::Pull { name, dir } => {
            let store = open(&dir)?;
            let registries = image::RegistriesConfig::load(&image::registries_file(&dir.data_dir))?;
            let opts = image::PullOptions {
                registries,
                ..Default::default()
            };
            let rec = image::pull(&store, &name, &opts).await?;
            println!("Image is up to date for {}", rec.id);
            Ok(())
        }
    }
}

/// crictl's `images` table: one row per tag (an untagged image shows `<none>`), the ID's
/// first 13 hex digits, the size as Docker's HumanSize (3 significant digits, decimal).
pub fn render_table(images: &[ImageRecord], quiet: bool) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    for i in images {
        let id: String =
            i.id.trim_start_matches("sha256:")
                .chars()
                .take(13)
                .collect();
        if quiet {
            rows.push([i.id.clone(), String::new(), String::new(), String::new()]);
            continue;
        }
        let size = human_size(i.size);
        if i.names.is_empty() {
            let repo = i
                .repo_digests
                .first()
                .and_then(|d| d.split_once('@'))
                .map_or("<none>", |(r, _)| r);
            rows.push([repo.to_owned(), "<none>".into(), id, size]);
            continue;
        }
        for n in &i.names {
            let (repo, tag) = image::reference::split_name(n);
            rows.push([repo.to_owned(), tag.to_owned(), id.clone(), size.clone()]);
        }
    }
    if quiet {
        return rows.into_iter().map(|r| format!("{}\n", r[0])).collect();
    }
    let header = ["IMAGE", "TAG", "IMAGE ID", "SIZE"].map(String::from);
    let mut widths = [0usize; 4];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line = format!(
            "{:<w0$}   {:<w1$}   {:<w2$}   {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Docker's `units.HumanSizeWithPrecision(size, 3)`: `291B`, `12.3kB`, `1.08MB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s}{}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(291), "291B");
        assert_eq!(human_size(12_345), "12.3kB");
        assert_eq!(human_size(1_084_206), "1.08MB");
        assert_eq!(human_size(2_000_000), "2MB");
        assert_eq!(human_size(0), "0B");
    }
}
