//! The local journal of an ingestion, which makes it resumable without duplicating anything.
//!
//! An append-only JSON Lines file: a header naming the input and the mapping, then one record
//! per transaction when it is submitted (`sent`: its id, the peer, the input lines it carries and
//! the entities it inserts) and one when its fate is known (`confirmed`: in a block; `failed`:
//! refused or dropped). Each record is written with one `write` before the step it announces
//! goes on, so a crash loses at most the record being written (a torn last line is ignored).
//! A resumed run skips the lines of confirmed transactions, reuses their entities, and asks the
//! peers where each transaction sent but never resolved stands before doing its lines again.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What the journal belongs to: a resumed run must read the same input with the same mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The input file (as given).
    pub input: String,
    /// Its size in bytes.
    pub size: u64,
    /// The mapping ([`super::mapping::Mapping::describe`]).
    pub mapping: String,
}

/// A submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Its id (hex).
    pub sent: String,
    /// The index of the peer it was submitted to.
    pub peer: usize,
    /// The input lines whose rows it carries.
    pub lines: Vec<u64>,
    /// The entities it inserts: (name, CID).
    pub entities: Vec<(String, String)>,
    /// Its artefacts and its `artefactCreatedBy` cells.
    pub artefacts: usize,
    /// Its cells.
    pub cells: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Header(Header),
    Sent(Sent),
    Confirmed { confirmed: String },
    Failed { failed: String, reason: String },
}

/// What earlier runs left.
#[derive(Debug, Default)]
pub struct Resumed {
    /// Input lines already committed.
    pub done: HashSet<u64>,
    /// Entities already committed, by name (CID as text).
    pub entities: HashMap<String, String>,
    /// Transactions sent whose fate was never recorded.
    pub unresolved: Vec<Sent>,
    /// Artefacts, cells and entities committed by earlier runs.
    pub artefacts: usize,
    /// Cells committed by earlier runs.
    pub cells: usize,
}

impl Resumed {
    /// Counts `sent` as committed.
    pub fn commit(&mut self, sent: &Sent) {
        self.done.extend(sent.lines.iter().copied());
        self.entities.extend(sent.entities.iter().cloned());
        self.artefacts += sent.artefacts;
        self.cells += sent.cells;
    }
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    file: File,
}

impl Journal {
    /// Opens (or creates) the journal at `path` for `header`; what earlier runs left.
    pub fn open(path: &Path, header: &Header) -> Result<(Self, Resumed), String> {
        let at = |e: std::io::Error| format!("journal {}: {e}", path.display());
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(at(e)),
        };
        let resumed =
            replay(&text, header).map_err(|e| format!("journal {}: {e}", path.display()))?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(at)?;
        // A torn last line (a crash while writing it) is cut off.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            file.set_len(whole as u64).map_err(at)?;
        }
        if text[..whole].trim().is_empty() {
            write_line(&mut file, &Line::Header(header.clone())).map_err(at)?;
        }
        Ok((Self { file }, resumed))
    }

    /// Records a submitted transaction (before waiting for it).
    pub fn sent(&mut self, sent: &Sent) -> std::io::Result<()> {
        write_line(&mut self.file, &Line::Sent(sent.clone()))
    }

    /// Records that transaction `id` is in a block.
    pub fn confirmed(&mut self, id: &str) -> std::io::Result<()> {
        let confirmed = id.to_string();
        write_line(&mut self.file, &Line::Confirmed { confirmed })
    }

    /// Records that transaction `id` will not be committed, and why.
    pub fn failed(&mut self, id: &str, reason: &str) -> std::io::Result<()> {
        let (failed, reason) = (id.to_string(), reason.to_string());
        write_line(&mut self.file, &Line::Failed { failed, reason })
    }

    /// Flushes the journal to disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_all()
    }
}

fn write_line(file: &mut File, line: &Line) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    file.write_all(&bytes)
}

fn replay(text: &str, header: &Header) -> Result<Resumed, String> {
    let mut resumed = Resumed::default();
    let mut pending: HashMap<String, Sent> = HashMap::new();
    let mut order = vec![];
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for (n, text) in lines.iter().enumerate() {
        let line = match serde_json::from_str::<Line>(text) {
            Ok(line) => line,
            Err(_) if n + 1 == lines.len() => break, // torn by a crash
            Err(e) => return Err(format!("line {}: {e}", n + 1)),
        };
        match line {
            Line::Header(h) if n == 0 => {
                if h != *header {
                    return Err(format!(
                        "it belongs to input {} ({} bytes) with mapping {}; this run reads {} \
                         ({} bytes) with mapping {}: remove it or name another with --journal",
                        h.input, h.size, h.mapping, header.input, header.size, header.mapping
                    ));
                }
            }
            Line::Header(_) => return Err(format!("line {}: a second header", n + 1)),
            _ if n == 0 => return Err("no header".into()),
            Line::Sent(sent) => {
                order.push(sent.sent.clone());
                pending.insert(sent.sent.clone(), sent);
            }
            Line::Confirmed { confirmed } => {
                if let Some(sent) = pending.remove(&confirmed) {
                    resumed.commit(&sent);
                }
            }
            Line::Failed { failed, .. } => {
                pending.remove(&failed);
            }
        }
    }
    resumed.unresolved = order
        .into_iter()
        .filter_map(|id| pending.remove(&id))
        .collect();
    Ok(resumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: &str, lines: &[u64]) -> Sent {
        Sent {
            sent: id.into(),
            peer: 1,
            lines: lines.to_vec(),
            entities: vec![(format!("creator of {id}"), format!("cid-{id}"))],
            artefacts: lines.len(),
            cells: lines.len(),
        }
    }

    #[test]
    fn a_reopened_journal_knows_what_was_committed_and_what_is_unresolved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let header = Header {
            input: "in.csv".into(),
            size: 10,
            mapping: "name=t".into(),
        };
        let (mut journal, resumed) = Journal::open(&path, &header).unwrap();
        assert!(resumed.done.is_empty());
        journal.sent(&sent("a", &[2, 3])).unwrap();
        journal.sent(&sent("b", &[4])).unwrap();
        journal.sent(&sent("c", &[5])).unwrap();
        journal.confirmed("a").unwrap();
        journal.failed("c", "rejected").unwrap();
        drop(journal);
        // A crash in the middle of a record.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"confirmed\":\"b").unwrap();

        let (mut journal, resumed) = Journal::open(&path, &header).unwrap();
        assert_eq!(resumed.done, HashSet::from([2, 3]));
        assert_eq!(
            resumed.entities.get("creator of a").map(String::as_str),
            Some("cid-a")
        );
        assert_eq!(resumed.unresolved, vec![sent("b", &[4])]);
        assert_eq!((resumed.artefacts, resumed.cells), (2, 2));
        // The torn line is gone: what follows it reads back.
        journal.confirmed("b").unwrap();
        drop(journal);
        let (_, resumed) = Journal::open(&path, &header).unwrap();
        assert_eq!(resumed.done, HashSet::from([2, 3, 4]));
        assert!(resumed.unresolved.is_empty());

        let other = Header {
            size: 11,
            ..header.clone()
        };
        assert!(Journal::open(&path, &other)
            .unwrap_err()
            .contains("remove it"));
    }
}
