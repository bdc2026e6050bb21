//! Uploaded blueprint archives: a tar file (ustar, GNU or pax names), gzipped or not, unpacked
//! into a private directory that `engine::create_deployment` then snapshots like any other
//! blueprint directory.
//!
//! The reader streams: gzip is inflated a buffer at a time (miniz_oxide, already built for
//! backtraces) and each file is copied to disk as it is read, so memory stays a few buffers
//! whatever the archive holds. What it accepts is deliberately narrow: regular files and
//! directories at relative paths without `..`; links, devices and absolute paths are refused
//! (an archive must not write, or point, outside its directory). Sizes are bounded by the
//! snapshot's own limits ([`MAX_BYTES`], [`MAX_FILES`]) before anything is written past them.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use miniz_oxide::inflate::stream::{InflateState, inflate};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use crate::engine::snapshot::{MAX_BYTES, MAX_FILES};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive is not a tar file{0}")]
    NotTar(String),
    #[error("the gzip stream is corrupt: {0}")]
    Gzip(String),
    #[error("the archive entry {0:?} is refused: {1}")]
    Entry(String, &'static str),
    #[error("the archive unpacks to more than the limit of a deployment ({0})")]
    TooLarge(&'static str),
    #[error("cannot unpack the archive: {0}")]
    Io(#[from] io::Error),
}

/// Unpack `archive` (tar or tar.gz) into the directory `into`, which exists.
pub fn unpack(archive: &[u8], into: &Path) -> Result<(), ArchiveError> {
    if archive.starts_with(&[0x1f, 0x8b]) {
        let mut reader = Gunzip::new(archive)?;
        untar(&mut reader, into)?;
        // Read to the end: the trailer's CRC and size are checked there.
        io::copy(&mut reader, &mut io::sink()).map_err(gzip_error)?;
        Ok(())
    } else {
        untar(&mut io::Cursor::new(archive), into)
    }
}

fn gzip_error(e: io::Error) -> ArchiveError {
    if e.kind() == io::ErrorKind::InvalidData {
        ArchiveError::Gzip(e.to_string())
    } else {
        ArchiveError::Io(e)
    }
}

/// One tar header field as text (up to its first NUL).
fn field(block: &[u8]) -> &[u8] {
    let end = block.iter().position(|&b| b == 0).unwrap_or(block.len());
    &block[..end]
}

fn octal(block: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field(block)).ok()?.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn untar(reader: &mut impl Read, into: &Path) -> Result<(), ArchiveError> {
    let mut block = [0u8; 512];
    let mut long_name: Option<String> = None;
    let (mut files, mut bytes) = (0usize, 0u64);
    let mut first = true;
    loop {
        match reader.read_exact(&mut block) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !first => {
                // Archives cut after the last entry (no end blocks) are common enough.
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ArchiveError::NotTar(
                    " (it is shorter than one header)".into(),
                ));
            }
            Err(e) => return Err(gzip_error(e)),
        }
        if block.iter().all(|&b| b == 0) {
            if first {
                return Err(ArchiveError::NotTar(" (it is empty)".into()));
            }
            return Ok(());
        }
        let stored_sum = octal(&block[148..156]);
        let sum: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if stored_sum != Some(sum) {
            return Err(ArchiveError::NotTar(if first {
                String::new()
            } else {
                " (a header's checksum is wrong)".into()
            }));
        }
        first = false;
        let size = octal(&block[124..136])
            .ok_or_else(|| ArchiveError::NotTar(" (a header's size is not octal)".into()))?;
        let kind = block[156];
        let name = match long_name.take() {
            Some(n) => n,
            None => {
                let mut name = String::new();
                if &block[257..262] == b"ustar" {
                    let prefix = field(&block[345..500]);
                    if !prefix.is_empty() {
                        name.push_str(&String::from_utf8_lossy(prefix));
                        name.push('/');
                    }
                }
                name.push_str(&String::from_utf8_lossy(field(&block[..100])));
                name
            }
        };
        let padded = size.div_ceil(512) * 512;
        match kind {
            // A pax header (its `path` names the next entry) or a GNU long name.
            b'x' | b'L' => {
                if size > 64 * 1024 {
                    return Err(ArchiveError::Entry(name, "its extended header is too long"));
                }
                let mut data = vec![0u8; padded as usize];
                reader.read_exact(&mut data).map_err(gzip_error)?;
                data.truncate(size as usize);
                long_name = if kind == b'L' {
                    Some(String::from_utf8_lossy(field(&data)).into_owned())
                } else {
                    pax_path(&data)
                };
            }
            // A global pax header: nothing windlass uses.
            b'g' => skip(reader, padded)?,
            b'0' | 0 | b'7' | b'5' => {
                let Some(rel) = relative(&name) else {
                    return Err(ArchiveError::Entry(
                        name,
                        "only relative paths without `..` are accepted",
                    ));
                };
                let target = into.join(&rel);
                if kind == b'5' {
                    std::fs::create_dir_all(&target)?;
                    skip(reader, padded)?;
                    continue;
                }
                files += 1;
                bytes += size;
                if files > MAX_FILES {
                    return Err(ArchiveError::TooLarge("files"));
                }
                if bytes > MAX_BYTES {
                    return Err(ArchiveError::TooLarge("bytes"));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mode = octal(&block[100..108]).unwrap_or(0o644) as u32 & 0o755;
                write_file(reader, &target, size, mode | 0o600)?;
                skip(reader, padded - size)?;
            }
            b'1' | b'2' => {
                return Err(ArchiveError::Entry(
                    name,
                    "links are not accepted in an uploaded archive",
                ));
            }
            _ => {
                return Err(ArchiveError::Entry(
                    name,
                    "only regular files and directories are accepted",
                ));
            }
        }
    }
}

/// The `path` record of a pax extended header (`LEN path=VALUE\n` records).
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"path=") {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
        rest = &rest[len..];
    }
    None
}

/// A path inside the unpack directory, or `None` when it would leave it.
fn relative(name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn skip(reader: &mut impl Read, n: u64) -> Result<(), ArchiveError> {
    let copied = io::copy(&mut reader.take(n), &mut io::sink()).map_err(gzip_error)?;
    if copied != n {
        return Err(ArchiveError::NotTar(" (it ends inside an entry)".into()));
    }
    Ok(())
}

fn write_file(
    reader: &mut impl Read,
    target: &Path,
    size: u64,
    mode: u32,
) -> Result<(), ArchiveError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(target)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                ArchiveError::Entry(target.display().to_string(), "it appears twice")
            } else {
                ArchiveError::Io(e)
            }
        })?;
    let copied = io::copy(&mut reader.take(size), &mut out).map_err(gzip_error)?;
    if copied != size {
        return Err(ArchiveError::NotTar(" (it ends inside a file)".into()));
    }
    out.flush()?;
    Ok(())
}

/// A gzip member inflated as it is read; the trailer's CRC-32 and size are checked at its end.
struct Gunzip<'a> {
    state: Box<InflateState>,
    input: &'a [u8],
    crc: Crc32,
    size: u64,
    ended: bool,
}

impl<'a> Gunzip<'a> {
    fn new(data: &'a [u8]) -> Result<Gunzip<'a>, ArchiveError> {
        let bad = |why: &str| ArchiveError::Gzip(why.to_string());
        if data.len() < 18 || data[2] != 8 {
            return Err(bad("not a deflate-compressed gzip file"));
        }
        let flags = data[3];
        let mut at = 10;
        if flags & 0x04 != 0 {
            let len = usize::from(u16::from_le_bytes([data[at], data[at + 1]]));
            at += 2 + len;
        }
        for flag in [0x08, 0x10] {
            if flags & flag != 0 {
                let end = data
                    .get(at..)
                    .and_then(|d| d.iter().position(|&b| b == 0))
                    .ok_or_else(|| bad("its header is cut short"))?;
                at += end + 1;
            }
        }
        if flags & 0x02 != 0 {
            at += 2;
        }
        let input = data
            .get(at..)
            .filter(|d| d.len() >= 8)
            .ok_or_else(|| bad("its header is cut short"))?;
        Ok(Gunzip {
            state: InflateState::new_boxed(DataFormat::Raw),
            input,
            crc: Crc32::new(),
            size: 0,
            ended: false,
        })
    }

    fn check_trailer(&self) -> io::Result<()> {
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
        let t = self
            .input
            .get(..8)
            .ok_or_else(|| bad("the trailer is missing"))?;
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if crc != self.crc.value() {
            return Err(bad("its CRC-32 does not match its content"));
        }
        if size != self.size as u32 {
            return Err(bad("its length does not match its trailer"));
        }
        Ok(())
    }
}

impl Read for Gunzip<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        let r = inflate(&mut self.state, self.input, buf, MZFlush::None);
        self.input = &self.input[r.bytes_consumed..];
        let written = &buf[..r.bytes_written];
        self.crc.update(written);
        self.size += r.bytes_written as u64;
        match r.status {
            Ok(MZStatus::StreamEnd) => {
                self.ended = true;
                self.check_trailer()?;
            }
            Ok(_) => {}
            Err(MZError::Buf) if r.bytes_written == 0 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the compressed stream is cut short",
                ));
            }
            Err(MZError::Buf) => {}
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("inflate failed ({e:?})"),
                ));
            }
        }
        Ok(r.bytes_written)
    }
}

/// CRC-32 (IEEE), as gzip's trailer has it.
struct Crc32 {
    table: [u32; 256],
    value: u32,
}

impl Crc32 {
    fn new() -> Crc32 {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *entry = c;
        }
        Crc32 {
            table,
            value: 0xffff_ffff,
        }
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.value =
                self.table[((self.value ^ u32::from(b)) & 0xff) as usize] ^ (self.value >> 8);
        }
    }

    fn value(&self) -> u32 {
        self.value ^ 0xffff_ffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header block for `name` with `size` bytes of `kind`.
    fn header(name: &str, size: usize, kind: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000755");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn tar(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, text) in entries {
            out.extend_from_slice(&header(name, text.len(), b'0'));
            out.extend_from_slice(text.as_bytes());
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("windlass-archive-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn files_land_under_the_directory_and_escapes_are_refused() {
        let dir = scratch("ok");
        unpack(
            &tar(&[
                ("./bp/blueprint.yaml", "a: 1\n"),
                ("bp/scripts/x.sh", "echo\n"),
            ]),
            &dir,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("bp/blueprint.yaml")).unwrap(),
            "a: 1\n"
        );
        assert!(dir.join("bp/scripts/x.sh").is_file());
        for bad in ["../evil", "/etc/evil", "a/../../evil"] {
            let err = unpack(&tar(&[(bad, "x")]), &scratch("bad")).unwrap_err();
            assert!(matches!(err, ArchiveError::Entry(..)), "{bad}: {err}");
        }
        let mut link = header("l", 0, b'2').to_vec();
        link.extend_from_slice(&[0u8; 1024]);
        assert!(matches!(
            unpack(&link, &scratch("link")),
            Err(ArchiveError::Entry(..))
        ));
        assert!(matches!(
            unpack(b"not a tar at all, just text", &scratch("text")),
            Err(ArchiveError::NotTar(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn gzip_is_inflated_and_its_checksum_checked() {
        let plain = tar(&[("blueprint.yaml", "tosca_definitions_version: x\n")]);
        let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        gz.extend(miniz_oxide::deflate::compress_to_vec(&plain, 6));
        let mut crc = Crc32::new();
        crc.update(&plain);
        gz.extend(crc.value().to_le_bytes());
        gz.extend((plain.len() as u32).to_le_bytes());
        let dir = scratch("gz");
        unpack(&gz, &dir).unwrap();
        assert!(dir.join("blueprint.yaml").is_file());
        let n = gz.len();
        gz[n - 8] ^= 1;
        assert!(matches!(
            unpack(&gz, &scratch("gz-bad")),
            Err(ArchiveError::Gzip(_))
        ));
    }
}
