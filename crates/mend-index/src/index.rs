//! Building the index: list the files, parse them in parallel (through the blob cache), then
//! assemble symbols, name tables, BM25 postings and the reference graph.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use git2::{ObjectType, Oid, Repository};
use serde::Serialize;

use crate::IndexError;
use crate::bm25::Bm25;
use crate::cache::{Cache, Cached};
use crate::extract::{FileParser, FileRecord, Import, Ref, RefKind};
use crate::history::{CoChange, History};
use crate::lang::{ModuleStyle, SymbolKind, grammar_by_name, module_path};
use crate::source::{self, Candidate, Listing, Origin, SkipReason};
use crate::tokenize;

/// How to build an index.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Parser threads; 0 means one per core.
    pub threads: usize,
    /// Where parsed files are cached by blob id; `None` means `$XDG_CACHE_HOME/mend/index`
    /// (or `~/.cache/mend/index`).
    pub cache_dir: Option<PathBuf>,
    /// Read and write the cache at all.
    pub use_cache: bool,
    /// Files larger than this are skipped unread (`too_large`).
    pub max_file_bytes: u64,
    /// A file whose parse takes longer is skipped (`parse_timeout`).
    pub parse_timeout: Duration,
    /// How many commits of history (first parents, at or before the indexed commit) to
    /// read for co-change evidence; 0 reads none. Only `from_git` reads history.
    pub history_commits: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            threads: 0,
            cache_dir: None,
            use_cache: true,
            max_file_bytes: 1024 * 1024,
            parse_timeout: Duration::from_secs(10),
            history_commits: 1000,
        }
    }
}

/// What building the index did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexStats {
    /// Files in the index (parsed now or taken from the cache).
    pub files: usize,
    pub symbols: usize,
    pub references: usize,
    /// Files parsed by this build.
    pub parsed: usize,
    /// Files whose parse came from the cache.
    pub from_cache: usize,
    /// Indexed files whose syntax tree has errors (what parsed is still used).
    pub parse_errors: usize,
    /// Files left out, by reason.
    pub skipped: BTreeMap<SkipReason, usize>,
    /// Indexed files by language.
    pub languages: BTreeMap<String, usize>,
    pub threads: usize,
    pub seconds: f64,
    /// Of which: listing the files, parsing (or reading the cache), assembling the index.
    pub list_seconds: f64,
    pub parse_seconds: f64,
    pub assemble_seconds: f64,
    /// Reading co-change history (included in `seconds`).
    pub history_seconds: f64,
    pub history_commits: usize,
    /// The commit indexed (git sources).
    pub commit: Option<String>,
}

/// A file in the index.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    pub language: &'static str,
    /// The git blob id of the content.
    pub blob: String,
    pub lines: u32,
    pub is_test: bool,
    /// The syntax tree had errors.
    pub had_errors: bool,
    /// The dotted module (Python) or package directory (Go) it defines.
    pub module: String,
}

/// A definition in the index. Lines are 1-based and inclusive; the span covers decorators.
#[derive(Debug, Clone, Serialize)]
pub struct Symbol {
    pub file: usize,
    pub name: String,
    /// Within its module: `QuerySet.filter`. Modules carry their dotted path.
    pub qualified_name: String,
    pub kind: SymbolKind,
    pub start_line: u32,
    pub end_line: u32,
    pub signature: String,
    pub doc: Option<String>,
    pub parent: Option<usize>,
    /// Ranked on its own by `localize` (classes, functions, methods not inside a function).
    pub unit: bool,
    /// Base classes, by their last name part.
    pub bases: Vec<String>,
}

/// A definition found by name, in the shape the agent's `search` tool shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolHit {
    pub path: String,
    pub line: usize,
    pub kind: String,
    pub name: String,
    pub signature: String,
}

pub(crate) struct FileData {
    pub info: FileInfo,
    /// Symbol ids of this file: the module symbol first, then its definitions in order.
    pub symbols: std::ops::Range<usize>,
    pub refs: Vec<Ref>,
    pub imports: Vec<Import>,
    pub strings: Vec<(u32, String)>,
}

/// The index of one repository tree. `Send + Sync`: share it in an `Arc`.
pub struct Index {
    pub(crate) files: Vec<FileData>,
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) by_name: HashMap<String, Vec<usize>>,
    pub(crate) by_lower_name: HashMap<String, Vec<usize>>,
    pub(crate) modules: HashMap<String, usize>,
    pub(crate) by_file_name: HashMap<String, Vec<usize>>,
    /// How many files refer to each name (calls, attributes, imports, bases).
    pub(crate) ref_files: HashMap<String, u32>,
    pub(crate) vocab: HashMap<String, u32>,
    pub(crate) term_strings: Vec<String>,
    pub(crate) file_bm25: Bm25,
    /// Unit documents: `unit_symbols[d]` is the symbol of BM25 document `d`.
    pub(crate) unit_bm25: Bm25,
    pub(crate) unit_symbols: Vec<usize>,
    /// `graph[a]` = files that `a` refers to, with weights.
    pub(crate) graph: Vec<Vec<(usize, f32)>>,
    pub(crate) stats: IndexStats,
    pub(crate) co_change: CoChange,
    pub(crate) skipped_files: Vec<(String, SkipReason)>,
}

enum Outcome {
    Parsed {
        record: Box<FileRecord>,
        oid: Oid,
        cached: bool,
    },
    Skipped(SkipReason),
}

impl Index {
    /// Indexes the tree of `rev` in the git repository at `repo` (bare or not). An empty
    /// repository asked for `HEAD` gives an empty index.
    pub fn from_git(repo: &Path, rev: &str, opts: &IndexOptions) -> Result<Index, IndexError> {
        let started = Instant::now();
        let listing = source::list_git(repo, rev)?;
        let mut index = build(listing, opts, started);
        if opts.history_commits > 0 {
            let t = Instant::now();
            let cache = opts
                .use_cache
                .then(|| opts.cache_dir.clone().or_else(Cache::default_dir))
                .flatten();
            // History is extra evidence: an unborn HEAD (an empty repository) has none.
            if let Ok(history) =
                History::from_git(repo, rev, opts.history_commits, cache.as_deref())
            {
                index.set_history(&history);
            }
            index.stats.history_seconds = t.elapsed().as_secs_f64();
            index.stats.seconds += index.stats.history_seconds;
        }
        Ok(index)
    }

    /// Co-change evidence from `history` (replacing any read before).
    pub fn set_history(&mut self, history: &History) {
        self.co_change = CoChange::new(history, |p| self.file_id(p), self.files.len());
        self.stats.history_commits = history.commits();
    }

    /// Indexes a directory as it is on disk (a work tree with uncommitted edits, or any
    /// directory). In a git work tree, `.gitignore`d files are left out.
    pub fn from_worktree(root: &Path, opts: &IndexOptions) -> Result<Index, IndexError> {
        let started = Instant::now();
        let listing = source::list_worktree(root)?;
        Ok(build(listing, opts, started))
    }

    /// `from_git` at `rev` when one is given, or when `repo` is a bare repository (at HEAD);
    /// otherwise `from_worktree`.
    pub fn open(repo: &Path, rev: Option<&str>, opts: &IndexOptions) -> Result<Index, IndexError> {
        let bare = Repository::open(repo).is_ok_and(|r| r.is_bare());
        match rev {
            Some(rev) => Index::from_git(repo, rev, opts),
            None if bare => Index::from_git(repo, "HEAD", opts),
            None => Index::from_worktree(repo, opts),
        }
    }

    pub fn stats(&self) -> &IndexStats {
        &self.stats
    }

    pub fn files(&self) -> impl ExactSizeIterator<Item = &FileInfo> {
        self.files.iter().map(|f| &f.info)
    }

    pub fn file(&self, path: &str) -> Option<&FileInfo> {
        self.file_id(path).map(|i| &self.files[i].info)
    }

    pub(crate) fn file_id(&self, path: &str) -> Option<usize> {
        self.files
            .binary_search_by(|f| f.info.path.as_str().cmp(path))
            .ok()
    }

    /// Files left out and why.
    pub fn skipped_files(&self) -> &[(String, SkipReason)] {
        &self.skipped_files
    }

    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// The definitions of one file, the module first.
    pub fn symbols_in(&self, path: &str) -> &[Symbol] {
        match self.file_id(path) {
            Some(i) => &self.symbols[self.files[i].symbols.clone()],
            None => &[],
        }
    }

    /// References (calls, attribute uses, imports, base classes) made by one file.
    pub fn references_in(&self, path: &str) -> &[Ref] {
        match self.file_id(path) {
            Some(i) => &self.files[i].refs,
            None => &[],
        }
    }

    pub fn imports_in(&self, path: &str) -> &[Import] {
        match self.file_id(path) {
            Some(i) => &self.files[i].imports,
            None => &[],
        }
    }

    pub fn path_of(&self, symbol: &Symbol) -> &str {
        &self.files[symbol.file].info.path
    }

    /// The innermost ranked unit (class, function or method) whose span holds `line`, or
    /// `None` at module level.
    pub fn enclosing_unit(&self, path: &str, line: u32) -> Option<&Symbol> {
        self.symbols_in(path)
            .iter()
            .filter(|s| s.unit && s.start_line <= line && line <= s.end_line)
            .min_by_key(|s| s.end_line - s.start_line)
    }

    /// Definitions by name: a plain name (`filter`), a qualified one (`QuerySet.filter`), or a
    /// dotted path with its module (`django.db.models.query.QuerySet`). Exact matches first;
    /// a name with no exact match is looked up case-insensitively. Non-test files first.
    pub fn find_symbol(&self, name: &str) -> Vec<SymbolHit> {
        let name = name.trim().trim_end_matches("()");
        let name = name.replace("::", ".");
        let last = name.rsplit('.').next().unwrap_or(&name);
        let mut ids: Vec<usize> = if name.contains('.') {
            self.by_name
                .get(last)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| self.full_name(i) == name || dotted_suffix(&self.full_name(i), &name))
                .collect()
        } else {
            self.by_name.get(last).cloned().unwrap_or_default()
        };
        if ids.is_empty() && !name.contains('.') {
            ids = self
                .by_lower_name
                .get(&last.to_lowercase())
                .cloned()
                .unwrap_or_default();
        }
        ids.sort_by_key(|&i| {
            let s = &self.symbols[i];
            (
                self.files[s.file].info.is_test,
                s.kind == SymbolKind::Module,
                s.file,
                s.start_line,
            )
        });
        ids.into_iter().map(|i| self.hit(i)).collect()
    }

    pub(crate) fn hit(&self, i: usize) -> SymbolHit {
        let s = &self.symbols[i];
        SymbolHit {
            path: self.files[s.file].info.path.clone(),
            line: s.start_line as usize,
            kind: s.kind.as_str().to_string(),
            name: s.qualified_name.clone(),
            signature: s.signature.clone(),
        }
    }

    /// `module.Qualified.name` (modules: their dotted path).
    pub(crate) fn full_name(&self, i: usize) -> String {
        let s = &self.symbols[i];
        if s.kind == SymbolKind::Module {
            return s.qualified_name.clone();
        }
        let module = &self.files[s.file].info.module;
        if module.is_empty() {
            s.qualified_name.clone()
        } else {
            format!("{module}.{}", s.qualified_name)
        }
    }

    /// How specific a name is, from 1 (used by hardly any file) down to 0.1 (used everywhere,
    /// like `CharField` in Django): the IDF of the name over the files that refer to it.
    pub(crate) fn name_specificity(&self, name: &str) -> f32 {
        let n = self.files.len().max(2) as f32;
        let refs = self.ref_files.get(name).copied().unwrap_or(0) as f32;
        ((n / (1.0 + refs)).ln() / n.ln()).clamp(0.1, 1.0)
    }

    pub(crate) fn term_id(&self, term: &str) -> Option<u32> {
        self.vocab.get(term).copied()
    }
}

/// `a.b.C.m` ends with `C.m` on a dot boundary.
fn dotted_suffix(full: &str, suffix: &str) -> bool {
    full.len() > suffix.len()
        && full.ends_with(suffix)
        && full.as_bytes()[full.len() - suffix.len() - 1] == b'.'
}

fn build(listing: Listing, opts: &IndexOptions, started: Instant) -> Index {
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let cache_dir = if opts.use_cache {
        opts.cache_dir.clone().or_else(Cache::default_dir)
    } else {
        None
    };
    let cache = cache_dir.as_deref().map(Cache::new);
    let list_seconds = started.elapsed().as_secs_f64();
    let outcomes = parse_all(&listing, opts, threads, cache.as_ref());
    let parse_seconds = started.elapsed().as_secs_f64() - list_seconds;

    let mut stats = IndexStats {
        threads,
        commit: listing.commit.map(|c| c.to_string()),
        ..Default::default()
    };
    let mut skipped_files = listing.skipped;
    let mut parsed: Vec<(String, Oid, FileRecord)> = Vec::new();
    for (c, outcome) in listing.candidates.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Parsed {
                record,
                oid,
                cached,
            } => {
                if cached {
                    stats.from_cache += 1;
                } else {
                    stats.parsed += 1;
                }
                parsed.push((c.path, oid, *record));
            }
            Outcome::Skipped(reason) => skipped_files.push((c.path, reason)),
        }
    }
    skipped_files.sort();
    for (_, reason) in &skipped_files {
        *stats.skipped.entry(*reason).or_default() += 1;
    }
    parsed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut index = assemble(parsed, stats, skipped_files);
    index.stats.seconds = started.elapsed().as_secs_f64();
    index.stats.list_seconds = list_seconds;
    index.stats.parse_seconds = parse_seconds;
    index.stats.assemble_seconds = index.stats.seconds - list_seconds - parse_seconds;
    tracing::info!(
        files = index.stats.files,
        symbols = index.stats.symbols,
        parsed = index.stats.parsed,
        cached = index.stats.from_cache,
        seconds = index.stats.seconds,
        "indexed"
    );
    index
}

/// Parses every candidate on `threads` plain threads (never on an async executor).
fn parse_all(
    listing: &Listing,
    opts: &IndexOptions,
    threads: usize,
    cache: Option<&Cache>,
) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Outcome)>> =
        Mutex::new(Vec::with_capacity(listing.candidates.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.min(listing.candidates.len()).max(1) {
            scope.spawn(|| {
                let repo = listing
                    .git_dir
                    .as_deref()
                    .and_then(|d| Repository::open(d).ok());
                let mut parsers: HashMap<&'static str, FileParser> = HashMap::new();
                let mut local = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = listing.candidates.get(i) else {
                        break;
                    };
                    local.push((i, process(c, repo.as_ref(), &mut parsers, opts, cache)));
                }
                if let Ok(mut all) = results.lock() {
                    all.extend(local);
                }
            });
        }
    });
    let mut all = results.into_inner().unwrap_or_else(|e| e.into_inner());
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, o)| o).collect()
}

fn process(
    c: &Candidate,
    repo: Option<&Repository>,
    parsers: &mut HashMap<&'static str, FileParser>,
    opts: &IndexOptions,
    cache: Option<&Cache>,
) -> Outcome {
    // Blobs from git carry their id: a cache hit needs no read at all.
    if let (Origin::Blob(oid), Some(cache)) = (&c.origin, cache)
        && let Some(hit) = cache.get(*oid, c.grammar.name)
    {
        return from_cache(hit, *oid);
    }
    let bytes = match source::read_candidate(repo, c, opts.max_file_bytes) {
        Ok(b) => b,
        Err(reason) => return Outcome::Skipped(reason),
    };
    let oid = match &c.origin {
        Origin::Blob(oid) => *oid,
        Origin::Disk(_) => match Oid::hash_object(ObjectType::Blob, &bytes) {
            Ok(oid) => oid,
            Err(_) => return Outcome::Skipped(SkipReason::Unreadable),
        },
    };
    if matches!(c.origin, Origin::Disk(_))
        && let Some(hit) = cache.and_then(|cache| cache.get(oid, c.grammar.name))
    {
        return from_cache(hit, oid);
    }
    let result = match source::decode(&bytes).and_then(|text| match source::classify(&text) {
        Some(reason) => Err(reason),
        None => Ok(text),
    }) {
        Err(reason) => Cached::Skipped(reason),
        Ok(text) => {
            let parser = match parsers.entry(c.grammar.name) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    match FileParser::new(c.grammar, opts.parse_timeout) {
                        Ok(p) => v.insert(p),
                        Err(e) => {
                            tracing::warn!("{}: {e}", c.path);
                            return Outcome::Skipped(SkipReason::ParseTimeout);
                        }
                    }
                }
            };
            match parser.parse(&text) {
                Ok(record) => Cached::Parsed(record),
                Err(e) => {
                    tracing::warn!("{}: {e}", c.path);
                    // A timeout depends on the machine's load: not cached.
                    return Outcome::Skipped(SkipReason::ParseTimeout);
                }
            }
        }
    };
    if let Some(cache) = cache {
        cache.put(oid, c.grammar.name, &result);
    }
    match result {
        Cached::Parsed(record) => Outcome::Parsed {
            record: Box::new(record),
            oid,
            cached: false,
        },
        Cached::Skipped(reason) => Outcome::Skipped(reason),
    }
}

fn from_cache(hit: Cached, oid: Oid) -> Outcome {
    match hit {
        Cached::Parsed(record) => Outcome::Parsed {
            record: Box::new(record),
            oid,
            cached: true,
        },
        Cached::Skipped(reason) => Outcome::Skipped(reason),
    }
}

/// How much a path's words count against its content's in the file documents.
const PATH_WEIGHT: f32 = 3.0;

fn assemble(
    parsed: Vec<(String, Oid, FileRecord)>,
    mut stats: IndexStats,
    skipped_files: Vec<(String, SkipReason)>,
) -> Index {
    let mut vocab: HashMap<String, u32> = HashMap::new();
    let mut intern = |t: &str| -> u32 {
        if let Some(&id) = vocab.get(t) {
            return id;
        }
        let id = vocab.len() as u32;
        vocab.insert(t.to_string(), id);
        id
    };
    let mut files = Vec::with_capacity(parsed.len());
    let mut symbols: Vec<Symbol> = Vec::new();
    let mut file_docs: Vec<Vec<(u32, f32)>> = Vec::with_capacity(parsed.len());
    let mut unit_docs: Vec<Vec<(u32, f32)>> = Vec::new();
    let mut unit_symbols = Vec::new();
    for (path, oid, record) in parsed {
        let file_id = files.len();
        let grammar = grammar_by_name(&record.grammar);
        let style = grammar.map_or(ModuleStyle::PythonDotted, |g| g.modules);
        let module = module_path(&path, style);
        let language = grammar.map_or("unknown", |g| g.name);
        *stats.languages.entry(language.to_string()).or_default() += 1;
        if record.had_errors {
            stats.parse_errors += 1;
        }
        let info = FileInfo {
            is_test: crate::lang::is_test_path(&path),
            path,
            language,
            blob: oid.to_string(),
            lines: record.lines,
            had_errors: record.had_errors,
            module: module.clone(),
        };
        let first = symbols.len();
        let module_name = match style {
            ModuleStyle::PythonDotted => module.rsplit('.').next().unwrap_or(&module).to_string(),
            ModuleStyle::GoPackage => module.rsplit('/').next().unwrap_or(&module).to_string(),
        };
        symbols.push(Symbol {
            file: file_id,
            name: module_name,
            qualified_name: module.clone(),
            kind: SymbolKind::Module,
            start_line: 1,
            end_line: record.lines,
            signature: match style {
                ModuleStyle::PythonDotted => format!("module {module}"),
                ModuleStyle::GoPackage => format!("package {module}"),
            },
            doc: record.module_doc.clone(),
            parent: None,
            unit: false,
            bases: Vec::new(),
        });
        for d in &record.defs {
            symbols.push(Symbol {
                file: file_id,
                name: d.name.clone(),
                qualified_name: d.qualified.clone(),
                kind: d.kind,
                start_line: d.start_line,
                end_line: d.end_line,
                signature: d.signature.clone(),
                doc: d.doc.clone(),
                parent: Some(d.parent.map_or(first, |p| first + 1 + p as usize)),
                unit: d.unit,
                bases: d.bases.clone(),
            });
        }
        // Documents: each unit's terms, and the file's = all its terms plus its path's.
        let mut file_bag: HashMap<u32, f32> = HashMap::new();
        let unit_ids: Vec<usize> = (0..record.defs.len())
            .filter(|&i| record.defs[i].unit)
            .map(|i| first + 1 + i)
            .collect();
        for (k, bag) in record.unit_terms.iter().enumerate() {
            let mut doc = Vec::with_capacity(bag.len());
            for (t, c) in bag {
                let id = intern(t);
                *file_bag.entry(id).or_default() += *c as f32;
                doc.push((id, *c as f32));
            }
            if k > 0
                && let Some(&sym) = unit_ids.get(k - 1)
            {
                // A unit's own name counts as much as its body.
                tokenize::identifier_terms(&symbols[sym].name, |t| doc.push((intern(t), 3.0)));
                doc.shrink_to_fit();
                unit_docs.push(doc);
                unit_symbols.push(sym);
            }
        }
        for seg in info.path.split('/') {
            let seg = seg.rsplit_once('.').map_or(seg, |(stem, _)| stem);
            tokenize::identifier_terms(seg, |t| {
                *file_bag.entry(intern(t)).or_default() += PATH_WEIGHT;
            });
        }
        file_docs.push(file_bag.into_iter().collect());
        stats.references += record.refs.len();
        files.push(FileData {
            info,
            symbols: first..symbols.len(),
            refs: record.refs,
            imports: record.imports,
            strings: record.strings,
        });
    }
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    let mut by_lower_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, s) in symbols.iter().enumerate() {
        by_name.entry(s.name.clone()).or_default().push(i);
        by_lower_name
            .entry(s.name.to_lowercase())
            .or_default()
            .push(i);
    }
    let mut modules = HashMap::new();
    let mut by_file_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        if f.info.language == "python" {
            modules.entry(f.info.module.clone()).or_insert(i);
        }
        let name = f
            .info
            .path
            .rsplit('/')
            .next()
            .unwrap_or(&f.info.path)
            .to_string();
        by_file_name.entry(name).or_default().push(i);
    }
    let graph = reference_graph(&files, &symbols, &by_name, &modules);
    let mut ref_files: HashMap<String, u32> = HashMap::new();
    for f in &files {
        let mut names: Vec<&str> = f.refs.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for n in names {
            *ref_files.entry(n.to_string()).or_default() += 1;
        }
    }
    stats.files = files.len();
    stats.symbols = symbols.len();
    let mut term_strings = vec![String::new(); vocab.len()];
    for (t, &id) in &vocab {
        term_strings[id as usize] = t.clone();
    }
    let file_bm25 = Bm25::new(vocab.len(), file_docs);
    let unit_bm25 = Bm25::new(vocab.len(), unit_docs);
    Index {
        files,
        symbols,
        by_name,
        by_lower_name,
        modules,
        by_file_name,
        ref_files,
        vocab,
        term_strings,
        file_bm25,
        unit_bm25,
        unit_symbols,
        graph,
        stats,
        skipped_files,
        co_change: CoChange::default(),
    }
}

/// Names defined in more files than this say nothing about which file is meant.
const MAX_DEFINERS: usize = 25;

/// File → files it uses: through resolved imports (weight 1 each) and through names it
/// calls, reads or inherits that few files define (weight 1/definers, summed, then
/// square-rooted so that one heavy user does not drown the rest).
fn reference_graph(
    files: &[FileData],
    symbols: &[Symbol],
    by_name: &HashMap<String, Vec<usize>>,
    modules: &HashMap<String, usize>,
) -> Vec<Vec<(usize, f32)>> {
    let mut definers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (name, ids) in by_name {
        if name.starts_with("__") || name.len() < 3 {
            continue;
        }
        let mut fs: Vec<usize> = ids
            .iter()
            .filter(|&&i| symbols[i].unit)
            .map(|&i| symbols[i].file)
            .collect();
        fs.sort_unstable();
        fs.dedup();
        if !fs.is_empty() && fs.len() <= MAX_DEFINERS {
            definers.insert(name.as_str(), fs);
        }
    }
    files
        .iter()
        .enumerate()
        .map(|(a, f)| {
            let mut weights: HashMap<usize, f32> = HashMap::new();
            for r in &f.refs {
                if r.kind == RefKind::Import {
                    continue;
                }
                if let Some(fs) = definers.get(r.name.as_str()) {
                    let w = 1.0 / fs.len() as f32;
                    for &b in fs {
                        if b != a {
                            *weights.entry(b).or_default() += w;
                        }
                    }
                }
            }
            for (_, w) in weights.iter_mut() {
                *w = w.sqrt();
            }
            for imp in &f.imports {
                for b in resolve_import(&f.info.module, &f.info.path, imp, modules) {
                    if b != a {
                        *weights.entry(b).or_default() += 1.0;
                    }
                }
            }
            let mut edges: Vec<(usize, f32)> = weights.into_iter().collect();
            edges.sort_unstable_by_key(|e| e.0);
            edges
        })
        .collect()
}

/// The files an import names: the module itself, and for `from m import x` the submodule
/// `m.x` when there is one.
pub(crate) fn resolve_import(
    module: &str,
    path: &str,
    imp: &Import,
    modules: &HashMap<String, usize>,
) -> Vec<usize> {
    let dots = imp.module.chars().take_while(|&c| c == '.').count();
    let base = if dots > 0 {
        // `from .x import y` in package `a.b` (a file a/b/c.py, or a/b/__init__.py).
        let is_package = path.ends_with("__init__.py");
        let mut parts: Vec<&str> = module.split('.').collect();
        if !is_package {
            parts.pop();
        }
        for _ in 1..dots {
            parts.pop();
        }
        let rest = &imp.module[dots..];
        let mut base = parts.join(".");
        if !rest.is_empty() {
            if !base.is_empty() {
                base.push('.');
            }
            base.push_str(rest);
        }
        base
    } else {
        imp.module.clone()
    };
    let mut out = Vec::new();
    if let Some(&f) = modules.get(&base) {
        out.push(f);
    }
    for name in &imp.names {
        if let Some(&f) = modules.get(&format!("{base}.{name}")) {
            out.push(f);
        }
    }
    out
}
