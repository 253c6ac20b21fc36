//! `widesweep data fetch`: put a dataset into the data directory, from the
//! official location (with a progress bar) or from a local copy, verifying
//! checksums and then the files themselves with the readers.
//!
//! Checksums are the published MD5s of the official files. Debian's
//! `dataset-fashion-mnist` package recompresses the gzip files, so for
//! Fashion-MNIST the SHA-256 of the decompressed content is accepted too
//! (measured from Debian's files, which decompress to the official counts).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use md5::{Digest, Md5};
use widesweep_arch::Dataset;

use super::{DataError, LoadOptions, Splits, folder, load_from};

/// One official file.
#[derive(Clone, Copy, Debug)]
pub struct RemoteFile {
    /// The URL of the folder holding the file.
    pub base: &'static str,
    pub name: &'static str,
    pub md5: &'static str,
    /// SHA-256 of the decompressed content, where known.
    pub content_sha256: Option<&'static str>,
}

const FASHION_BASE: &str = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/";
const CIFAR_BASE: &str = "https://www.cs.toronto.edu/~kriz/";
const MNIST_BASE: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";

/// What to download for `dataset`: one archive for CIFAR, four gzipped IDX
/// files for the MNIST family.
pub fn remote_files(dataset: Dataset) -> Vec<RemoteFile> {
    let idx = |base: &'static str, files: [(&'static str, &'static str, Option<&'static str>); 4]| {
        files.into_iter().map(|(name, md5, content_sha256)| RemoteFile { base, name, md5, content_sha256 }).collect()
    };
    match dataset {
        Dataset::Cifar10 => vec![RemoteFile {
            base: CIFAR_BASE,
            name: "cifar-10-binary.tar.gz",
            md5: "c32a1d4ab5d03f1284b67883e8d87530",
            content_sha256: None,
        }],
        Dataset::Cifar100 => vec![RemoteFile {
            base: CIFAR_BASE,
            name: "cifar-100-binary.tar.gz",
            md5: "03b5dce01913d631647c71ecec9e9cb8",
            content_sha256: None,
        }],
        Dataset::FashionMnist => idx(
            FASHION_BASE,
            [
                (
                    "train-images-idx3-ubyte.gz",
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    Some("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    Some("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "bef4ecab320f06d8554ea6380940ec79",
                    Some("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    Some("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
                ),
            ],
        ),
        Dataset::Mnist => idx(
            MNIST_BASE,
            [
                ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
                ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", None),
                ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", None),
                ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", None),
            ],
        ),
    }
}

impl RemoteFile {
    pub fn url(&self) -> String {
        format!("{}{}", self.base, self.name)
    }
}

/// How to fetch.
#[derive(Clone, Debug, Default)]
pub struct FetchOptions {
    /// Import from this archive, IDX file or directory instead of downloading.
    pub from: Option<PathBuf>,
    /// Accept files whose checksums differ from the official ones and record
    /// counts other than the official ones (e.g. a subset); the files must
    /// still be well formed.
    pub allow_unofficial: bool,
    /// Draw a progress bar while downloading.
    pub progress: bool,
}

/// What a fetch did.
#[derive(Clone, Debug)]
pub struct FetchReport {
    /// Where the dataset's files now are.
    pub dir: PathBuf,
    /// Where they came from (URL, archive or directory).
    pub source: String,
    pub train_images: usize,
    pub test_images: usize,
}

/// Puts `dataset` into `data_dir/<folder>` and verifies it.
pub fn fetch(dataset: Dataset, data_dir: &Path, options: &FetchOptions) -> Result<FetchReport, DataError> {
    let dest = data_dir.join(folder(dataset));
    fs::create_dir_all(&dest).map_err(DataError::io(&dest))?;
    let debian = Path::new(super::DEBIAN_FASHION_MNIST);
    let source = match &options.from {
        Some(from) => {
            import(dataset, from, &dest, options)?;
            from.display().to_string()
        }
        None if dataset == Dataset::FashionMnist && debian.join(super::IDX_FILES[0]).exists() => {
            import(dataset, debian, &dest, options)?;
            format!("{} (Debian package dataset-fashion-mnist)", debian.display())
        }
        None => {
            download_all(dataset, data_dir, &dest, options)?;
            remote_files(dataset).iter().map(RemoteFile::url).collect::<Vec<_>>().join(", ")
        }
    };
    let splits = verify(dataset, &dest, options)?;
    Ok(FetchReport { dir: dest, source, train_images: splits.train.len(), test_images: splits.test.len() })
}

/// Reads the imported files back with the readers: sizes, counts, labels.
fn verify(dataset: Dataset, dir: &Path, options: &FetchOptions) -> Result<Splits, DataError> {
    load_from(dataset, dir, LoadOptions { official_sizes: !options.allow_unofficial })
}

fn import(dataset: Dataset, from: &Path, dest: &Path, options: &FetchOptions) -> Result<(), DataError> {
    let meta = fs::metadata(from).map_err(DataError::io(from))?;
    match dataset {
        Dataset::Cifar10 | Dataset::Cifar100 if meta.is_dir() => {
            // Either the extracted folder itself or its parent.
            let inner = from.join(folder(dataset));
            let dir = if inner.is_dir() { inner } else { from.to_path_buf() };
            for name in super::files(dataset) {
                copy_file(&dir.join(name), &dest.join(name))?;
            }
            Ok(())
        }
        Dataset::Cifar10 | Dataset::Cifar100 => {
            let official = &remote_files(dataset)[0];
            check_md5(from, official, options)?;
            extract_tar_gz(from, super::files(dataset), dest)
        }
        Dataset::FashionMnist | Dataset::Mnist => {
            // A directory of the four files, or one of them (its folder is used).
            let dir = if meta.is_dir() { from } else { from.parent().unwrap_or(Path::new(".")) };
            for file in remote_files(dataset) {
                let src = dir.join(file.name);
                check_md5(&src, &file, options)?;
                copy_file(&src, &dest.join(file.name))?;
            }
            Ok(())
        }
    }
}

fn copy_file(src: &Path, dst: &Path) -> Result<(), DataError> {
    if !src.exists() {
        return Err(DataError::Missing { path: src.into(), hint: "the import source lacks this file".into() });
    }
    if src == dst {
        return Ok(());
    }
    let tmp = dst.with_extension("part");
    fs::copy(src, &tmp).map_err(DataError::io(src))?;
    fs::rename(&tmp, dst).map_err(DataError::io(dst))
}

fn md5_hex(path: &Path) -> Result<String, DataError> {
    let mut file = fs::File::open(path).map_err(DataError::io(path))?;
    let mut hasher = Md5::new();
    std::io::copy(&mut file, &mut hasher).map_err(DataError::io(path))?;
    Ok(hex::encode(hasher.finalize()))
}

fn content_sha256_hex(path: &Path) -> Result<String, DataError> {
    let file = fs::File::open(path).map_err(DataError::io(path))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut GzDecoder::new(file), &mut hasher)
        .map_err(|source| DataError::Gzip { path: path.into(), source })?;
    Ok(hex::encode(hasher.finalize()))
}

/// Checks `path` against the official checksums of `official`: the MD5 of
/// the file, or else the SHA-256 of its decompressed content where known.
pub fn check_md5(path: &Path, official: &RemoteFile, options: &FetchOptions) -> Result<(), DataError> {
    if !path.exists() {
        return Err(DataError::Missing { path: path.into(), hint: "the import source lacks this file".into() });
    }
    if options.allow_unofficial {
        return Ok(());
    }
    let actual = md5_hex(path)?;
    if actual == official.md5 {
        return Ok(());
    }
    if let Some(expected) = official.content_sha256
        && content_sha256_hex(path).ok().as_deref() == Some(expected)
    {
        return Ok(());
    }
    Err(DataError::Checksum { path: path.into(), expected: official.md5.to_string(), actual })
}

/// Extracts the members of a .tar.gz whose file names are in `names` (in
/// whatever folder) into `dest`; refuses an archive that lacks one.
pub fn extract_tar_gz(archive: &Path, names: &[&str], dest: &Path) -> Result<(), DataError> {
    let bad = |message: String| DataError::Import { path: archive.into(), message };
    let file = fs::File::open(archive).map_err(DataError::io(archive))?;
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let mut found = vec![false; names.len()];
    let entries = tar.entries().map_err(|e| bad(format!("not a .tar.gz archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt archive: {e}")))?;
        let path = entry.path().map_err(|e| bad(format!("corrupt member name: {e}")))?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(pos) = names.iter().position(|n| *n == name) else {
            continue;
        };
        // Only the file name is used, so a hostile member path cannot escape `dest`.
        let target = dest.join(names[pos]);
        let tmp = target.with_extension("part");
        let mut out = fs::File::create(&tmp).map_err(DataError::io(&tmp))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| bad(format!("member {name} is corrupt: {e}")))?;
        out.flush().map_err(DataError::io(&tmp))?;
        fs::rename(&tmp, &target).map_err(DataError::io(&target))?;
        found[pos] = true;
    }
    if let Some(pos) = found.iter().position(|f| !f) {
        return Err(bad(format!("the archive has no member {}", names[pos])));
    }
    Ok(())
}

fn download_all(dataset: Dataset, data_dir: &Path, dest: &Path, options: &FetchOptions) -> Result<(), DataError> {
    let downloads = data_dir.join(".downloads");
    fs::create_dir_all(&downloads).map_err(DataError::io(&downloads))?;
    for file in remote_files(dataset) {
        let path = downloads.join(file.name);
        if !(path.exists() && check_md5(&path, &file, options).is_ok()) {
            download(&file.url(), &path, options.progress)?;
            check_md5(&path, &file, options)?;
        }
        if file.name.ends_with(".tar.gz") {
            extract_tar_gz(&path, super::files(dataset), dest)?;
        } else {
            copy_file(&path, &dest.join(file.name))?;
        }
    }
    Ok(())
}

/// Streams `url` to `path` (through a .part file) with an optional progress bar.
fn download(url: &str, path: &Path, progress: bool) -> Result<(), DataError> {
    let failed = |message: String| DataError::Download { url: url.to_string(), message };
    tracing::info!(url, path = %path.display(), "downloading");
    let response = ureq::get(url).call().map_err(|e| failed(e.to_string()))?;
    let total =
        response.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let bar = if progress {
        let bar = total.map_or_else(indicatif::ProgressBar::no_length, indicatif::ProgressBar::new);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("valid progress template"),
        );
        bar.set_message(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let tmp = path.with_extension("part");
    let mut out = fs::File::create(&tmp).map_err(DataError::io(&tmp))?;
    let mut reader = bar.wrap_read(response.into_body().into_reader());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| failed(e.to_string()))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(DataError::io(&tmp))?;
    }
    bar.finish();
    fs::rename(&tmp, path).map_err(DataError::io(path))
}
