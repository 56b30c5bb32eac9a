//! Localization: from an issue's text to ranked files and ranked functions/classes, each with
//! the reasons it ranked where it did.
//!
//! Scores add up from: BM25 over files and over units (identifier-aware terms); what the
//! issue names (traceback frames, paths, dotted names, identifiers that the repository
//! defines, quoted messages that are string literals in the code); and a personalised
//! PageRank over the reference graph seeded by those scores, so that code the named code
//! uses rises too. Test files are down-weighted but stay findable.

use std::collections::HashMap;

use serde::Serialize;

use crate::bm25::top_k;
use crate::index::Index;
use crate::issue::{IssueSignals, ReadOptions, read_issue, read_issue_with};
use crate::lang::SymbolKind;

/// How many results to return.
#[derive(Debug, Clone)]
pub struct LocalizeOptions {
    pub max_files: usize,
    pub max_symbols: usize,
    /// Test files' scores are multiplied by this (the fix is rarely in a test).
    pub test_weight: f32,
    pub weights: RankWeights,
}

impl Default for LocalizeOptions {
    fn default() -> Self {
        LocalizeOptions {
            max_files: 50,
            max_symbols: 50,
            test_weight: 0.3,
            weights: RankWeights::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RankedFile {
    pub path: String,
    pub score: f32,
    pub is_test: bool,
    /// Why, strongest first: "named in traceback frame (line 12, in parse)", ...
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RankedSymbol {
    pub path: String,
    /// Qualified within its module: `QuerySet.filter`.
    pub name: String,
    pub kind: SymbolKind,
    pub line: u32,
    pub end_line: u32,
    pub signature: String,
    pub score: f32,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Localization {
    pub files: Vec<RankedFile>,
    pub symbols: Vec<RankedSymbol>,
}

/// The weights of the evidence, relative to the best BM25 match (1.0). Each kind of
/// evidence adds up within its family up to the family's cap, so that ten frames in one file
/// or five quoted messages do not outweigh everything else. The defaults were tuned on
/// SWE-bench Lite/Verified development instances (see the `locate` benchmark).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RankWeights {
    pub file_bm25: f32,
    pub unit_bm25: f32,
    /// The deepest traceback frame in the repository's non-test code.
    pub frame_deepest: f32,
    pub frame: f32,
    pub frame_cap: f32,
    pub path: f32,
    pub module: f32,
    /// A package (`__init__.py`) named as a module.
    pub package: f32,
    pub module_cap: f32,
    /// A dotted name the text names (`QuerySet.filter`, `a.b.C`).
    pub qualified: f32,
    /// A name the issue's code imports.
    pub imported: f32,
    pub qualified_cap: f32,
    /// A method the issue names, found on a class the issue names or on its bases.
    pub member: f32,
    /// A plain identifier the repository defines.
    pub ident: f32,
    pub ident_cap: f32,
    /// Identifiers defined in more files than this are too common to point anywhere.
    pub max_ident_files: usize,
    pub message: f32,
    pub message_cap: f32,
    /// A quoted message found in more files than this is boilerplate.
    pub max_message_files: usize,
    /// Personalised PageRank over the reference graph.
    pub ppr: f32,
    pub ppr_damping: f32,
    /// Only the best files seed the PageRank.
    pub ppr_seeds: usize,
    /// A unit's file's normalised score added to the unit's.
    pub file_prior: f32,
    /// BM25 length normalisation of the file documents (0: none, 1: full).
    pub file_b: f32,
    /// Files' scores are multiplied by `(lines / 100) ^ length_prior` (bug fixes land in
    /// big files more often than in small ones).
    pub length_prior: f32,
    /// Share of a class's own evidence that its methods get.
    pub parent_share: f32,
    /// Share of its best method's evidence that a class gets.
    pub child_share: f32,
    /// The file's best unit BM25 (normalised) added to the file's score.
    pub unit_max: f32,
    /// How much BM25 evidence seeds the PageRank (the other evidence counts fully).
    pub ppr_from_bm25: f32,
    /// Multiplier for files under documentation, example and benchmark directories.
    pub auxiliary: f32,
    /// A traceback path matches an indexed path under a layout directory (`lib/`, `src/`).
    pub layout_dirs: bool,
    /// Reading the issue: noise stripping, the title's weight, `name(` as code.
    pub strip_noise: bool,
    pub title_bonus: f32,
    pub calls_are_code: bool,
    /// A test file the issue names lifts the source file it tests (`test_ast.py` → `ast.py`).
    pub test_source: f32,
    /// A code name of the issue that is a file's stem once inflections and underscores are
    /// dropped (`mocked` → `mock.py`, `is_subset` → `issubset.py`), or a definition's name
    /// once underscores are dropped.
    pub stem: f32,
    /// A code name the repository never defines but reads (`config.autodoc_typehints`):
    /// the files and functions that read it.
    pub reader: f32,
    /// Files committed together with the best-ranked files before (a share of the best
    /// file's score, saturating with the number of shared commits).
    pub cochange: f32,
    /// How many of the best files lend their partners co-change evidence.
    pub cochange_seeds: usize,
    /// Definitions one call or override away from the definitions the issue names (by a
    /// frame, a qualified name or an identifier): a share of the named one's evidence.
    pub hop: f32,
    /// How many named definitions lend their neighbours evidence.
    pub hop_seeds: usize,
}

impl Default for RankWeights {
    fn default() -> Self {
        RankWeights {
            file_bm25: 1.5,
            unit_bm25: 2.0,
            frame_deepest: 4.0,
            frame: 1.0,
            frame_cap: 4.5,
            path: 2.5,
            module: 1.0,
            package: 0.3,
            module_cap: 1.5,
            qualified: 2.0,
            imported: 1.0,
            qualified_cap: 3.0,
            member: 0.75,
            ident: 1.2,
            ident_cap: 2.0,
            max_ident_files: 20,
            message: 1.0,
            message_cap: 1.5,
            max_message_files: 3,
            ppr: 0.2,
            ppr_damping: 0.5,
            ppr_seeds: 1000,
            file_prior: 1.0,
            unit_max: 0.5,
            file_b: 0.75,
            length_prior: 0.0,
            parent_share: 0.3,
            child_share: 0.5,
            ppr_from_bm25: 1.0,
            auxiliary: 0.5,
            layout_dirs: true,
            strip_noise: true,
            title_bonus: 1.0,
            calls_are_code: true,
            test_source: 1.5,
            stem: 1.0,
            reader: 0.5,
            cochange: 0.2,
            cochange_seeds: 3,
            hop: 0.15,
            hop_seeds: 5,
        }
    }
}

const PPR_ITERATIONS: usize = 30;
/// Directories a source layout puts above the installed package.
const LAYOUT_DIRS: &[&str] = &["lib", "src", "python", "source"];
const MAX_REASONS: usize = 4;
/// Documentation, examples and benchmarks hold code, but fixes rarely land there.
const AUXILIARY_DIRS: &[&str] = &[
    "doc",
    "docs",
    "examples",
    "example",
    "galleries",
    "gallery",
    "benchmarks",
    "asv_bench",
    "tutorials",
];

#[derive(Clone, Copy)]
enum Family {
    Bm25,
    Frame,
    Path,
    Module,
    Qualified,
    Ident,
    Message,
    Graph,
    History,
}

const FAMILIES: usize = 9;

/// Scores by family, with their reasons.
struct Acc {
    caps: [f32; FAMILIES],
    parts: Vec<[f32; FAMILIES]>,
    reasons: Vec<Vec<(f32, String)>>,
}

impl Acc {
    fn new(n: usize, w: &RankWeights) -> Acc {
        let caps = [
            f32::MAX,
            w.frame_cap,
            w.path,
            w.module_cap,
            w.qualified_cap,
            w.ident_cap,
            w.message_cap,
            f32::MAX,
            f32::MAX,
        ];
        Acc {
            caps,
            parts: vec![[0.0; FAMILIES]; n],
            reasons: vec![Vec::new(); n],
        }
    }

    fn add(&mut self, i: usize, family: Family, w: f32, reason: impl FnOnce() -> String) {
        if w <= 0.0 {
            return;
        }
        self.parts[i][family as usize] += w;
        let r = reason();
        match self.reasons[i].iter_mut().find(|(_, x)| *x == r) {
            Some(e) => e.0 += w,
            None => self.reasons[i].push((w, r)),
        }
    }

    fn total(&self, i: usize) -> f32 {
        self.parts[i]
            .iter()
            .zip(self.caps)
            .map(|(p, cap)| p.min(cap))
            .sum()
    }

    fn totals(&self) -> Vec<f32> {
        (0..self.parts.len()).map(|i| self.total(i)).collect()
    }

    fn reasons(&self, i: usize) -> Vec<String> {
        let mut r = self.reasons[i].clone();
        r.sort_by(|a, b| b.0.total_cmp(&a.0));
        r.into_iter().take(MAX_REASONS).map(|(_, s)| s).collect()
    }
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let max = v.iter().copied().fold(0.0f32, f32::max);
    if max <= 0.0 {
        vec![0.0; v.len()]
    } else {
        v.iter().map(|x| x / max).collect()
    }
}

fn is_auxiliary(path: &str) -> bool {
    path.split('/')
        .rev()
        .skip(1)
        .any(|d| AUXILIARY_DIRS.contains(&d))
}

impl Index {
    /// Ranks files and functions/classes for an issue; the issue's text is the only input.
    pub fn localize(&self, issue: &str, opts: &LocalizeOptions) -> Localization {
        let w = &opts.weights;
        let sig = read_issue_with(
            issue,
            &ReadOptions {
                strip_noise: w.strip_noise,
                title_bonus: w.title_bonus,
                calls_are_code: w.calls_are_code,
            },
        );
        let n_files = self.files.len();
        let mut files = Acc::new(n_files, w);
        let mut syms = Acc::new(self.symbols.len(), w);

        let query: Vec<(u32, f32)> = sig
            .terms
            .iter()
            .filter_map(|(t, w)| self.term_id(t).map(|id| (id, *w)))
            .collect();
        let file_bm25 = normalized(&self.file_bm25.scores_with(&query, w.file_b));
        for (f, &s) in file_bm25.iter().enumerate() {
            files.add(f, Family::Bm25, w.file_bm25 * s, || {
                "BM25 match".to_string()
            });
        }
        let unit_bm25 = normalized(&self.unit_bm25.scores(&query));
        if w.unit_max > 0.0 {
            let mut best = vec![0.0f32; n_files];
            for (d, &s) in unit_bm25.iter().enumerate() {
                let f = self.symbols[self.unit_symbols[d]].file;
                best[f] = best[f].max(s);
            }
            for (f, &s) in best.iter().enumerate() {
                files.add(f, Family::Bm25, w.unit_max * s, || "BM25 match".to_string());
            }
        }
        self.frame_signals(&sig, w, &mut files, &mut syms);
        self.path_signals(&sig, w, &mut files);
        self.name_signals(&sig, w, &mut files, &mut syms);
        self.message_signals(&sig, w, &mut files, &mut syms);
        self.test_source_signals(&sig, w, &mut files);
        self.stem_signals(&sig, w, &mut files, &mut syms);
        self.reader_signals(&sig, w, &mut files, &mut syms);
        self.hop_signals(w, &mut files, &mut syms);

        // Spread along the reference graph from what the issue points at.
        let prior: Vec<f32> = (0..n_files).map(|f| self.file_prior(f, opts)).collect();
        let mut seeds: Vec<f32> = (0..n_files)
            .map(|f| {
                let bm25 = files.parts[f][Family::Bm25 as usize];
                (files.total(f) - bm25 + w.ppr_from_bm25 * bm25).max(0.0) * prior[f]
            })
            .collect();
        if w.ppr_seeds < n_files {
            let keep: std::collections::HashSet<usize> = top_k(&seeds, w.ppr_seeds)
                .into_iter()
                .map(|x| x.0)
                .collect();
            for (f, s) in seeds.iter_mut().enumerate() {
                if !keep.contains(&f) {
                    *s = 0.0;
                }
            }
        }
        let (ppr, via) = self.personalized_pagerank(&seeds, w.ppr_damping);
        let ppr = normalized(&ppr);
        for f in 0..n_files {
            let via = via[f];
            files.add(f, Family::Graph, w.ppr * ppr[f], || match via {
                Some(src) => format!("used by `{}`", self.files[src].info.path),
                None => "central in the reference graph".to_string(),
            });
        }
        let scores = |files: &Acc| -> Vec<f32> {
            files
                .totals()
                .iter()
                .zip(&prior)
                .map(|(s, p)| s * p)
                .collect()
        };
        let mut file_scores = scores(&files);
        if w.cochange > 0.0 && !self.co_change.commits.is_empty() {
            self.co_change_signals(&file_scores, w, &mut files);
            file_scores = scores(&files);
        }
        let file_norm = normalized(&file_scores);

        for (d, &s) in unit_bm25.iter().enumerate() {
            let sym = self.unit_symbols[d];
            syms.add(sym, Family::Bm25, w.unit_bm25 * s, || {
                "BM25 match".to_string()
            });
        }
        // Classes and their methods share evidence: a named class lifts its methods, a
        // matching method its class.
        let own: Vec<f32> = self.unit_symbols.iter().map(|&u| syms.total(u)).collect();
        let mut shared: HashMap<usize, f32> = HashMap::new();
        for (d, &u) in self.unit_symbols.iter().enumerate() {
            if let Some(p) = self.symbols[u].parent
                && self.symbols[p].unit
                && let Ok(pd) = self.unit_symbols.binary_search(&p)
            {
                *shared.entry(u).or_default() += w.parent_share * own[pd];
                let e = shared.entry(p).or_default();
                *e = e.max(w.child_share * own[d]);
            }
        }
        let mut sym_scores: Vec<(usize, f32)> = Vec::new();
        for (d, &sym) in self.unit_symbols.iter().enumerate() {
            let f = self.symbols[sym].file;
            let s =
                (own[d] + shared.get(&sym).copied().unwrap_or(0.0) + w.file_prior * file_norm[f])
                    * prior[f];
            if s > 0.0 {
                sym_scores.push((sym, s));
            }
        }
        sym_scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        sym_scores.truncate(opts.max_symbols);

        let top_files = top_k(&file_scores, opts.max_files);
        Localization {
            files: top_files
                .into_iter()
                .map(|(f, score)| RankedFile {
                    path: self.files[f].info.path.clone(),
                    score,
                    is_test: self.files[f].info.is_test,
                    reasons: self.explain_file(f, &files, &query),
                })
                .collect(),
            symbols: sym_scores
                .into_iter()
                .map(|(i, score)| {
                    let s = &self.symbols[i];
                    let mut reasons = self.explain_unit(i, &syms, &query);
                    if file_norm[s.file] > 0.0 {
                        reasons.push(format!("in a file ranked {:.2}", file_norm[s.file]));
                    }
                    RankedSymbol {
                        path: self.files[s.file].info.path.clone(),
                        name: s.qualified_name.clone(),
                        kind: s.kind,
                        line: s.start_line,
                        end_line: s.end_line,
                        signature: s.signature.clone(),
                        score,
                        reasons,
                    }
                })
                .collect(),
        }
    }

    /// Test files and documentation/examples are down-weighted, not dropped.
    fn file_prior(&self, f: usize, opts: &LocalizeOptions) -> f32 {
        let info = &self.files[f].info;
        let mut p = 1.0;
        if info.is_test {
            p *= opts.test_weight;
        }
        if is_auxiliary(&info.path) {
            p *= opts.weights.auxiliary;
        }
        if opts.weights.length_prior != 0.0 {
            p *= (info.lines.max(10) as f32 / 100.0).powf(opts.weights.length_prior);
        }
        p
    }

    /// Plain BM25 over whole files (the benchmark's baseline uses its own plain tokens; this
    /// one uses the index's terms): paths best first.
    pub fn bm25_files(&self, issue: &str, k: usize) -> Vec<(String, f32)> {
        let sig = read_issue(issue);
        let query: Vec<(u32, f32)> = sig
            .terms
            .iter()
            .filter_map(|(t, w)| self.term_id(t).map(|id| (id, *w)))
            .collect();
        top_k(&self.file_bm25.scores(&query), k)
            .into_iter()
            .map(|(f, s)| (self.files[f].info.path.clone(), s))
            .collect()
    }

    /// Files a path mentioned in an issue may mean: the exact path, else indexed paths that
    /// end with it on a `/` boundary (absolute traceback paths, `site-packages/...`).
    pub(crate) fn match_path(&self, mentioned: &str, layout_dirs: bool) -> Vec<usize> {
        let mentioned = mentioned.trim_start_matches("./");
        if let Some(f) = self.file_id(mentioned) {
            return vec![f];
        }
        let name = mentioned.rsplit('/').next().unwrap_or(mentioned);
        let Some(cands) = self.by_file_name.get(name) else {
            return Vec::new();
        };
        // Longest common suffix in path components wins.
        let m: Vec<&str> = mentioned.split('/').collect();
        let mut best = 0;
        let mut out = Vec::new();
        for &f in cands {
            let p: Vec<&str> = self.files[f].info.path.split('/').collect();
            let common = m
                .iter()
                .rev()
                .zip(p.iter().rev())
                .take_while(|(a, b)| a == b)
                .count();
            // An absolute path must match the whole indexed path, except for the layout
            // directory an installed package loses (`lib/matplotlib/...` is installed as
            // `site-packages/matplotlib/...`, `src/_pytest/...` as `_pytest/...`); a bare name
            // may be ambiguous.
            let whole = common == p.len()
                || (layout_dirs
                    && common >= 2
                    && p[..p.len() - common]
                        .iter()
                        .all(|d| LAYOUT_DIRS.contains(d)));
            let ok = whole || common == m.len();
            if !ok {
                continue;
            }
            match common.cmp(&best) {
                std::cmp::Ordering::Greater => {
                    best = common;
                    out = vec![f];
                }
                std::cmp::Ordering::Equal => out.push(f),
                std::cmp::Ordering::Less => {}
            }
        }
        out
    }

    fn frame_signals(
        &self,
        sig: &IssueSignals,
        weights: &RankWeights,
        files: &mut Acc,
        syms: &mut Acc,
    ) {
        let matched: Vec<(usize, &crate::issue::Frame)> = sig
            .frames
            .iter()
            .filter_map(|fr| {
                let m = self.match_path(&fr.path, weights.layout_dirs);
                (m.len() == 1).then(|| (m[0], fr))
            })
            .collect();
        // The deepest frame in the repository's own code is where the error surfaced.
        let deepest = matched
            .iter()
            .rposition(|(f, _)| !self.files[*f].info.is_test);
        for (k, (f, fr)) in matched.iter().enumerate() {
            let w = if Some(k) == deepest {
                weights.frame_deepest
            } else {
                weights.frame
            };
            let where_ = match (&fr.line, &fr.function) {
                (Some(l), Some(func)) => format!(" (line {l}, in {func})"),
                (Some(l), None) => format!(" (line {l})"),
                _ => String::new(),
            };
            files.add(*f, Family::Frame, w, || {
                format!("named in traceback frame{where_}")
            });
            let Some(func) = &fr.function else { continue };
            for i in self.files[*f].symbols.clone() {
                let s = &self.symbols[i];
                if s.unit && s.name == *func {
                    syms.add(i, Family::Frame, w, || {
                        format!("traceback frame in `{func}`")
                    });
                }
            }
        }
    }

    fn path_signals(&self, sig: &IssueSignals, weights: &RankWeights, files: &mut Acc) {
        for p in &sig.paths {
            let m = self.match_path(p, weights.layout_dirs);
            if m.is_empty() || m.len() > 5 {
                continue;
            }
            let w = weights.path / m.len() as f32;
            for f in m {
                files.add(f, Family::Path, w, || {
                    format!("path `{p}` named in the issue")
                });
            }
        }
    }

    /// The definitions a name reaches from a module: defined there, or imported there from
    /// another module of the repository (package `__init__` re-exports), a few hops deep.
    fn resolve_in_module(&self, f: usize, qualified: &str, depth: usize) -> Vec<usize> {
        let defined: Vec<usize> = self.files[f]
            .symbols
            .clone()
            .filter(|&i| {
                self.symbols[i].kind != SymbolKind::Module
                    && self.symbols[i].qualified_name == qualified
            })
            .collect();
        if !defined.is_empty() || depth == 0 {
            return defined;
        }
        let head = qualified.split('.').next().unwrap_or(qualified);
        let data = &self.files[f];
        for imp in &data.imports {
            if !imp.names.iter().any(|n| n == head || n == "*") {
                continue;
            }
            for g in
                crate::index::resolve_import(&data.info.module, &data.info.path, imp, &self.modules)
            {
                if g == f {
                    continue;
                }
                let found = self.resolve_in_module(g, qualified, depth - 1);
                if !found.is_empty() {
                    return found;
                }
            }
        }
        Vec::new()
    }

    fn name_signals(
        &self,
        sig: &IssueSignals,
        weights: &RankWeights,
        files: &mut Acc,
        syms: &mut Acc,
    ) {
        // Dotted names: a module prefix, then a qualified name inside it (or re-exported by
        // it); or a qualified name (`Class.method`) anywhere.
        let dotted = sig.dotted.iter().map(|d| (d, 1.0)).chain(
            sig.imported
                .iter()
                .map(|d| (d, weights.imported / weights.qualified)),
        );
        for (d, weight) in dotted {
            let parts: Vec<&str> = d.split('.').collect();
            let mut resolved = false;
            for cut in (1..=parts.len()).rev() {
                let module = parts[..cut].join(".");
                let Some(&f) = self.modules.get(&module) else {
                    continue;
                };
                resolved = true;
                let rest = &parts[cut..];
                let package = self.files[f].info.path.ends_with("__init__.py");
                if rest.is_empty() {
                    let w = if package {
                        weights.package
                    } else {
                        weights.module
                    } * weight;
                    files.add(f, Family::Module, w, || format!("module `{module}` named"));
                    break;
                }
                // The longest prefix of the rest that names a definition.
                for take in (1..=rest.len()).rev() {
                    let qualified = rest[..take].join(".");
                    let hits = self.resolve_in_module(f, &qualified, 3);
                    if hits.is_empty() {
                        continue;
                    }
                    for i in hits {
                        let g = self.symbols[i].file;
                        let full = format!("{module}.{qualified}");
                        let w = weights.qualified
                            * weight
                            * self.name_specificity(&self.symbols[i].name);
                        syms.add(i, Family::Qualified, w, || format!("`{full}` named"));
                        files.add(g, Family::Qualified, w, || format!("defines `{full}`"));
                    }
                    break;
                }
                if !package {
                    files.add(f, Family::Module, weights.module / 2.0 * weight, || {
                        format!("module `{module}` named")
                    });
                }
                break;
            }
            if resolved || parts.len() < 2 {
                continue;
            }
            // `QuerySet.filter`, `Model.objects.filter`: the longest tail that is a qualified name.
            for start in 0..parts.len() - 1 {
                let tail = parts[start..].join(".");
                let last = parts[parts.len() - 1];
                let hits: Vec<usize> = self
                    .by_name
                    .get(last)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&i| {
                        self.symbols[i].kind != SymbolKind::Module
                            && self.symbols[i].qualified_name == tail
                    })
                    .collect();
                if hits.is_empty() || hits.len() > 5 {
                    continue;
                }
                let w = weights.qualified * weight * self.name_specificity(last)
                    / (hits.len() as f32).sqrt();
                for i in hits {
                    syms.add(i, Family::Qualified, w, || format!("`{tail}` named"));
                    files.add(self.symbols[i].file, Family::Qualified, w, || {
                        format!("defines `{tail}`")
                    });
                }
                break;
            }
        }
        self.member_signals(sig, weights, files, syms);
        // Identifiers the repository defines. Plain words ("line", "node") count only when
        // the issue uses them as code.
        for (id, &weight) in &sig.identifiers {
            if weight < 2.0 {
                continue;
            }
            let Some(ids) = self.by_name.get(id.as_str()) else {
                continue;
            };
            let defs: Vec<usize> = ids
                .iter()
                .copied()
                .filter(|&i| self.symbols[i].unit)
                .collect();
            if defs.is_empty() {
                continue;
            }
            let mut def_files: Vec<usize> = defs.iter().map(|&i| self.symbols[i].file).collect();
            def_files.sort_unstable();
            def_files.dedup();
            if def_files.len() > weights.max_ident_files {
                continue;
            }
            let spread = (def_files.len() as f32).sqrt();
            let w = weights.ident * weight / 3.0 / spread * self.name_specificity(id) * symptom(id);
            for &f in &def_files {
                files.add(f, Family::Ident, w, || format!("defines `{id}`"));
            }
            for &i in &defs {
                syms.add(i, Family::Ident, w, || format!("`{id}` named in the issue"));
            }
        }
    }

    /// Methods named in the issue, looked up on the classes named in the issue and on their
    /// bases: `GaussianMixture` and `fit_predict` lead to `BaseMixture.fit_predict`.
    fn member_signals(
        &self,
        sig: &IssueSignals,
        weights: &RankWeights,
        files: &mut Acc,
        syms: &mut Acc,
    ) {
        let code_names: Vec<(&str, f32)> = sig
            .identifiers
            .iter()
            .filter(|(_, w)| **w >= 2.0)
            .map(|(n, w)| (n.as_str(), *w))
            .collect();
        let mut classes: Vec<(usize, &str)> = Vec::new();
        for (name, _) in &code_names {
            let defs: Vec<usize> = self
                .by_name
                .get(*name)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| self.symbols[i].unit && self.symbols[i].kind == SymbolKind::Class)
                .collect();
            if (1..=3).contains(&defs.len()) {
                classes.extend(defs.into_iter().map(|d| (d, *name)));
            }
        }
        if classes.is_empty() {
            return;
        }
        for (member, _) in &code_names {
            let is_method = self.by_name.get(*member).is_some_and(|ids| {
                ids.iter()
                    .any(|&i| self.symbols[i].kind == SymbolKind::Method)
            });
            if !is_method {
                continue;
            }
            for &(class, class_name) in &classes {
                let found = self.class_member(class, member, 4);
                let spread = (found.len().max(1) as f32).sqrt();
                for i in found {
                    let owner = self.symbols[i].qualified_name.clone();
                    let w = weights.member
                        * self
                            .name_specificity(class_name)
                            .max(self.name_specificity(member))
                        / spread;
                    syms.add(i, Family::Qualified, w, || {
                        format!("`{class_name}.{member}` resolves to `{owner}`")
                    });
                    files.add(self.symbols[i].file, Family::Qualified, w, || {
                        format!("defines `{owner}` (`{class_name}.{member}`)")
                    });
                }
            }
        }
    }

    /// A method `member` of a class, or of its bases (found by name, at most three
    /// candidates each), `depth` levels up.
    fn class_member(&self, class: usize, member: &str, depth: usize) -> Vec<usize> {
        let c = &self.symbols[class];
        let own: Vec<usize> = self.files[c.file]
            .symbols
            .clone()
            .filter(|&i| self.symbols[i].parent == Some(class) && self.symbols[i].name == member)
            .collect();
        if !own.is_empty() || depth == 0 {
            return own;
        }
        for base in &c.bases {
            if base == &c.name {
                continue;
            }
            let candidates: Vec<usize> = self
                .by_name
                .get(base)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| self.symbols[i].kind == SymbolKind::Class && i != class)
                .collect();
            if candidates.len() > 3 {
                continue;
            }
            let found: Vec<usize> = candidates
                .into_iter()
                .flat_map(|b| self.class_member(b, member, depth - 1))
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }

    /// Files that changed together with the best-ranked files: the other backends of a
    /// feature, a module and its sibling. Scaled to the best file's score, so they rise
    /// towards it without passing it on co-change alone.
    fn co_change_signals(&self, scores: &[f32], weights: &RankWeights, files: &mut Acc) {
        let top = top_k(scores, weights.cochange_seeds);
        let Some(&(_, best)) = top.first() else {
            return;
        };
        if best <= 0.0 {
            return;
        }
        let mut gain: HashMap<usize, (f32, usize)> = HashMap::new();
        for &(f, s) in &top {
            for (g, share) in self.co_change.partners(f) {
                let e = gain.entry(g).or_insert((0.0, f));
                e.0 += share * s / best;
            }
        }
        // Total prior weight of a file is applied later; this is in pre-prior units.
        for (g, (raw, via)) in gain {
            let w = weights.cochange * best * (1.0 - (-raw).exp());
            files.add(g, Family::History, w, || {
                format!(
                    "changed together with `{}` before",
                    self.files[via].info.path
                )
            });
        }
    }

    /// One hop from the definitions the issue points at: what they call, the methods that
    /// override them or that they override, and the definitions that call them. (`hstack`
    /// named, the fix in the `row_join` it calls; `Axes.clear` named, the fix in
    /// `Axis.clear`.) Only names with few definitions are followed.
    fn hop_signals(&self, weights: &RankWeights, files: &mut Acc, syms: &mut Acc) {
        if weights.hop <= 0.0 {
            return;
        }
        // Evidence that names a definition: not BM25, not the graph.
        let named = |i: usize| -> f32 {
            let p = &syms.parts[i];
            [
                Family::Frame,
                Family::Qualified,
                Family::Ident,
                Family::Message,
            ]
            .iter()
            .map(|&f| p[f as usize])
            .sum()
        };
        let mut seeds: Vec<(usize, f32)> = self
            .unit_symbols
            .iter()
            .map(|&u| (u, named(u)))
            .filter(|x| x.1 > 0.0)
            .collect();
        seeds.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        seeds.truncate(weights.hop_seeds);
        let units_named = |name: &str| -> Vec<usize> {
            let defs: Vec<usize> = self
                .by_name
                .get(name)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| self.symbols[i].unit && self.symbols[i].kind != SymbolKind::Class)
                .collect();
            if defs.len() > 3 { Vec::new() } else { defs }
        };
        let mut gains: Vec<(usize, f32, String)> = Vec::new();
        for &(u, ev) in &seeds {
            let s = &self.symbols[u];
            let w = weights.hop * ev.min(3.0);
            // Callees: names called or read inside its body.
            let mut called: Vec<&str> = self.files[s.file]
                .refs
                .iter()
                .filter(|r| {
                    matches!(
                        r.kind,
                        crate::extract::RefKind::Call | crate::extract::RefKind::Attribute
                    ) && s.start_line <= r.line
                        && r.line <= s.end_line
                        && r.name != s.name
                })
                .map(|r| r.name.as_str())
                .collect();
            called.sort_unstable();
            called.dedup();
            for name in called {
                for d in units_named(name) {
                    gains.push((d, w, format!("called by `{}`", s.qualified_name)));
                }
            }
            // Overrides: methods of the same name on classes related by inheritance.
            if s.kind == SymbolKind::Method
                && let Some(class) = s.parent
            {
                let class_name = &self.symbols[class].name;
                let class_bases = &self.symbols[class].bases;
                for d in units_named(&s.name) {
                    let Some(other) = self.symbols[d].parent else {
                        continue;
                    };
                    let o = &self.symbols[other];
                    if d != u && (o.bases.contains(class_name) || class_bases.contains(&o.name)) {
                        gains.push((
                            d,
                            w,
                            format!("overrides or is overridden by `{}`", s.qualified_name),
                        ));
                    }
                }
            }
        }
        // Callers: definitions whose bodies call a seed (only seeds with rare names).
        let rare: HashMap<&str, (usize, f32)> = seeds
            .iter()
            .filter(|(u, _)| {
                let n = &self.symbols[*u].name;
                n.len() >= 4 && self.ref_files.get(n.as_str()).is_some_and(|&c| c <= 5)
            })
            .map(|&(u, ev)| (self.symbols[u].name.as_str(), (u, ev)))
            .collect();
        if !rare.is_empty() {
            for (f, data) in self.files.iter().enumerate() {
                for r in &data.refs {
                    if r.kind != crate::extract::RefKind::Call {
                        continue;
                    }
                    let Some(&(u, ev)) = rare.get(r.name.as_str()) else {
                        continue;
                    };
                    if let Some(c) = self.unit_at(f, r.line)
                        && c != u
                    {
                        let w = weights.hop * ev.min(3.0) / 2.0;
                        gains.push((c, w, format!("calls `{}`", self.symbols[u].qualified_name)));
                    }
                }
            }
        }
        for (d, w, reason) in gains {
            syms.add(d, Family::Graph, w, || reason.clone());
            files.add(self.symbols[d].file, Family::Graph, w / 2.0, || reason);
        }
    }

    /// Test files the issue names (paths, frames) lift the non-test files they test: the
    /// same stem without `test_`/`_test`, nearest in the directory tree.
    fn test_source_signals(&self, sig: &IssueSignals, weights: &RankWeights, files: &mut Acc) {
        if weights.test_source <= 0.0 {
            return;
        }
        let named = sig.paths.iter().chain(sig.frames.iter().map(|f| &f.path));
        let mut done = std::collections::HashSet::new();
        for p in named {
            let name = p.rsplit('/').next().unwrap_or(p);
            let Some(stem) = name.strip_suffix(".py") else {
                continue;
            };
            let Some(source) = stem
                .strip_prefix("test_")
                .or_else(|| stem.strip_suffix("_test"))
                .or_else(|| stem.strip_prefix("tests_"))
            else {
                continue;
            };
            if !done.insert(source.to_string()) {
                continue;
            }
            let cands = self.source_files_named(source);
            // Nearest to the test's directory: most shared directory names.
            let dirs: Vec<&str> = p.split('/').collect();
            let shared = |f: usize| {
                self.files[f]
                    .info
                    .path
                    .split('/')
                    .filter(|d| dirs.contains(d))
                    .count()
            };
            let best = cands.iter().map(|&f| shared(f)).max().unwrap_or(0);
            let best: Vec<usize> = cands.into_iter().filter(|&f| shared(f) == best).collect();
            if best.is_empty() || best.len() > 3 {
                continue;
            }
            let w = weights.test_source / best.len() as f32;
            for f in best {
                files.add(f, Family::Path, w, || {
                    format!("tested by `{name}` named in the issue")
                });
            }
        }
    }

    /// The non-test files called `{stem}.py`, wherever they are.
    fn source_files_named(&self, stem: &str) -> Vec<usize> {
        self.by_file_name
            .get(&format!("{stem}.py"))
            .map(|fs| {
                fs.iter()
                    .copied()
                    .filter(|&f| !self.files[f].info.is_test)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Code names of the issue matched loosely: to file stems after dropping inflections
    /// and underscores (`mocked` → `mock.py`, `is_subset` → `issubset.py`), and to
    /// definitions after dropping underscores.
    fn stem_signals(
        &self,
        sig: &IssueSignals,
        weights: &RankWeights,
        files: &mut Acc,
        syms: &mut Acc,
    ) {
        if weights.stem <= 0.0 {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        for (id, &weight) in &sig.identifiers {
            if weight < 2.0 || id.len() < 4 {
                continue;
            }
            let lower = id.to_lowercase();
            let squashed = lower.replace('_', "");
            let w = weights.stem * weight / 3.0 * self.name_specificity(id);
            for stem in word_variants(&lower) {
                if !seen.insert(stem.clone()) {
                    continue;
                }
                let cands = self.source_files_named(&stem);
                if cands.is_empty() || cands.len() > 3 {
                    continue;
                }
                let w = w / cands.len() as f32;
                for f in cands {
                    files.add(f, Family::Module, w, || {
                        format!("file `{stem}.py` for `{id}`")
                    });
                }
            }
            if squashed != lower && squashed.len() >= 5 && seen.insert(format!("def:{squashed}")) {
                let defs: Vec<usize> = self
                    .by_lower_name
                    .get(&squashed)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&i| self.symbols[i].unit)
                    .collect();
                if defs.is_empty() || defs.len() > 5 {
                    continue;
                }
                for i in defs {
                    let name = self.symbols[i].name.clone();
                    syms.add(i, Family::Ident, w, || format!("`{name}` for `{id}`"));
                    files.add(self.symbols[i].file, Family::Ident, w, || {
                        format!("defines `{name}` (`{id}`)")
                    });
                }
            }
        }
    }

    /// Code names with an underscore that the repository reads but never defines (settings
    /// and configuration keys: `config.autodoc_typehints`, `settings.FILE_UPLOAD_PERMISSIONS`):
    /// the functions that read them, in few files.
    fn reader_signals(
        &self,
        sig: &IssueSignals,
        weights: &RankWeights,
        files: &mut Acc,
        syms: &mut Acc,
    ) {
        if weights.reader <= 0.0 {
            return;
        }
        let keys: HashMap<&str, f32> = sig
            .identifiers
            .iter()
            .filter(|(id, w)| {
                **w >= 2.0
                    && id.len() >= 6
                    && id.contains('_')
                    && !id.starts_with("test_")
                    && !self
                        .by_name
                        .get(id.as_str())
                        .is_some_and(|d| d.iter().any(|&i| self.symbols[i].unit))
            })
            .map(|(id, w)| (id.as_str(), *w))
            .collect();
        if keys.is_empty() {
            return;
        }
        let mut readers: HashMap<&str, Vec<(usize, u32)>> = HashMap::new();
        for (f, data) in self.files.iter().enumerate() {
            if data.info.is_test {
                continue;
            }
            for r in &data.refs {
                if let Some((k, _)) = keys.get_key_value(r.name.as_str()) {
                    readers.entry(*k).or_default().push((f, r.line));
                }
            }
        }
        for (key, places) in readers {
            let mut in_files: Vec<usize> = places.iter().map(|p| p.0).collect();
            in_files.dedup();
            if in_files.len() > weights.max_ident_files {
                continue;
            }
            let w = weights.reader * keys[&key] / 3.0 / (in_files.len() as f32).sqrt();
            for f in in_files {
                files.add(f, Family::Ident, w, || format!("reads `{key}`"));
            }
            let mut units: Vec<usize> = places
                .iter()
                .filter_map(|&(f, line)| self.unit_at(f, line))
                .collect();
            units.sort_unstable();
            units.dedup();
            for i in units {
                syms.add(i, Family::Ident, w, || format!("reads `{key}`"));
            }
        }
    }

    /// Messages the issue quotes that the code has as string literals: prose-like pieces
    /// found in few files.
    fn message_signals(
        &self,
        sig: &IssueSignals,
        weights: &RankWeights,
        files: &mut Acc,
        syms: &mut Acc,
    ) {
        if sig.flat_text.len() < 12 {
            return;
        }
        let mut found: HashMap<&str, Vec<(usize, u32)>> = HashMap::new();
        for (f, data) in self.files.iter().enumerate() {
            for (line, lit) in &data.strings {
                let Some(piece) = longest_literal_piece(lit) else {
                    continue;
                };
                if piece.len() < 15 || !is_prose(piece) || !sig.flat_text.contains(piece) {
                    continue;
                }
                found.entry(piece).or_default().push((f, *line));
            }
        }
        for (piece, places) in found {
            let mut in_files: Vec<usize> = places.iter().map(|p| p.0).collect();
            in_files.dedup();
            if in_files.len() > weights.max_message_files {
                continue;
            }
            let w = weights.message / in_files.len() as f32;
            let shown: String = piece.chars().take(60).collect();
            for (f, line) in places {
                files.add(f, Family::Message, w, || {
                    format!("contains the quoted message \"{shown}\"")
                });
                if let Some(i) = self.unit_at(f, line) {
                    syms.add(i, Family::Message, w, || {
                        format!("contains the quoted message \"{shown}\"")
                    });
                }
            }
        }
    }

    fn unit_at(&self, f: usize, line: u32) -> Option<usize> {
        self.files[f]
            .symbols
            .clone()
            .filter(|&i| {
                let s = &self.symbols[i];
                s.unit && s.start_line <= line && line <= s.end_line
            })
            .min_by_key(|&i| self.symbols[i].end_line - self.symbols[i].start_line)
    }

    /// Personalised PageRank from `seeds` over the file graph; also, for each file, the seed
    /// that sent it the most rank directly.
    fn personalized_pagerank(&self, seeds: &[f32], damping: f32) -> (Vec<f32>, Vec<Option<usize>>) {
        let n = self.files.len();
        let total: f32 = seeds.iter().sum();
        if n == 0 || total <= 0.0 {
            return (vec![0.0; n], vec![None; n]);
        }
        let p: Vec<f32> = seeds.iter().map(|s| s / total).collect();
        let out_w: Vec<f32> = self
            .graph
            .iter()
            .map(|e| e.iter().map(|x| x.1).sum())
            .collect();
        let mut r = p.clone();
        for _ in 0..PPR_ITERATIONS {
            let mut next: Vec<f32> = p.iter().map(|x| (1.0 - damping) * x).collect();
            let mut dangling = 0.0;
            for a in 0..n {
                if out_w[a] <= 0.0 {
                    dangling += r[a];
                    continue;
                }
                let share = damping * r[a] / out_w[a];
                for &(b, w) in &self.graph[a] {
                    next[b] += share * w;
                }
            }
            for (x, pi) in next.iter_mut().zip(&p) {
                *x += damping * dangling * pi;
            }
            r = next;
        }
        // Rank beyond the file's own seed is what the graph added.
        let gained: Vec<f32> = r
            .iter()
            .zip(&p)
            .map(|(x, pi)| (x - (1.0 - damping) * pi).max(0.0))
            .collect();
        let mut via: Vec<(Option<usize>, f32)> = vec![(None, 0.0); n];
        for a in 0..n {
            if p[a] <= 0.0 || out_w[a] <= 0.0 {
                continue;
            }
            for &(b, w) in &self.graph[a] {
                let sent = p[a] * w / out_w[a];
                if sent > via[b].1 {
                    via[b] = (Some(a), sent);
                }
            }
        }
        (gained, via.into_iter().map(|v| v.0).collect())
    }

    fn explain_file(&self, f: usize, acc: &Acc, query: &[(u32, f32)]) -> Vec<String> {
        let mut reasons = acc.reasons(f);
        if let Some(r) = reasons.iter_mut().find(|r| *r == "BM25 match") {
            let terms = self.matched_terms(&self.file_bm25, f, query);
            *r = format!("BM25 match on {terms}");
        }
        if self.files[f].info.is_test {
            reasons.push("test file (down-weighted)".to_string());
        }
        reasons
    }

    fn explain_unit(&self, sym: usize, acc: &Acc, query: &[(u32, f32)]) -> Vec<String> {
        let mut reasons = acc.reasons(sym);
        if let Some(r) = reasons.iter_mut().find(|r| *r == "BM25 match") {
            let doc = self.unit_symbols.binary_search(&sym).unwrap_or(0);
            let terms = self.matched_terms(&self.unit_bm25, doc, query);
            *r = format!("BM25 match on {terms}");
        }
        reasons
    }

    fn matched_terms(&self, bm: &crate::bm25::Bm25, doc: usize, query: &[(u32, f32)]) -> String {
        let mut contrib = bm.contributions(doc, query);
        contrib.sort_by(|a, b| b.1.total_cmp(&a.1));
        let words: HashMap<u32, &str> = contrib
            .iter()
            .filter_map(|&(t, _)| self.term_text(t).map(|w| (t, w)))
            .collect();
        contrib
            .iter()
            .take(3)
            .filter_map(|(t, _)| words.get(t).map(|w| format!("`{w}`")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn term_text(&self, id: u32) -> Option<&str> {
        self.term_strings.get(id as usize).map(String::as_str)
    }
}

/// A lower-case code word and the file stems it may stand for: itself, without
/// underscores, and without a plural or past-tense ending (`mocked` → `mock`).
fn word_variants(lower: &str) -> Vec<String> {
    let mut out = vec![lower.to_string()];
    let squashed = lower.replace('_', "");
    if squashed != lower {
        out.push(squashed);
    }
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(stem) = lower.strip_suffix(suffix)
            && stem.len() >= 4
        {
            out.push(stem.to_string());
            // `mocked` → `mock`, `mapping` → `map` (doubled consonant).
            let b = stem.as_bytes();
            if b.len() >= 5 && b[b.len() - 1] == b[b.len() - 2] {
                out.push(stem[..stem.len() - 1].to_string());
            }
            break;
        }
    }
    out
}

/// Exception classes name the symptom, not where it comes from: their definitions count less.
fn symptom(name: &str) -> f32 {
    let last = name.rsplit('.').next().unwrap_or(name);
    if ["Error", "Exception", "Warning"]
        .iter()
        .any(|s| last.ends_with(s))
    {
        0.3
    } else {
        1.0
    }
}

/// Words rather than code: mostly letters and spaces, at least three words.
fn is_prose(s: &str) -> bool {
    let code = ["import ", "def ", "class ", "(", "=", "`", "__", "::"];
    if code.iter().any(|c| s.contains(c))
        || s.split_whitespace()
            .any(|w| w.trim_end_matches('.').contains('.'))
    {
        return false;
    }
    let letters = s.chars().filter(|c| c.is_alphabetic() || *c == ' ').count();
    s.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count()
        >= 3
        && letters * 10 >= s.chars().count() * 8
}

/// The longest run of a literal between format placeholders (`%s`, `{}`, `{name}`).
fn longest_literal_piece(lit: &str) -> Option<&str> {
    let mut best: Option<&str> = None;
    let mut rest = lit;
    while !rest.is_empty() {
        let cut = rest.find(['%', '{', '\\']).unwrap_or(rest.len());
        let piece = rest[..cut].trim();
        if best.is_none_or(|b| piece.len() > b.len()) {
            best = Some(piece);
        }
        if cut >= rest.len() {
            break;
        }
        // Skip the placeholder itself.
        let after = &rest[cut..];
        let skip = match after.as_bytes()[0] {
            b'{' => after.find('}').map_or(after.len(), |i| i + 1),
            _ => after.char_indices().nth(2).map_or(after.len(), |(i, _)| i),
        };
        rest = &after[skip..];
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_pieces() {
        assert_eq!(
            longest_literal_piece("Cannot resolve keyword %r into field. Choices are: %s"),
            Some("into field. Choices are:")
        );
        assert_eq!(
            longest_literal_piece("{name} must be a positive integer"),
            Some("must be a positive integer")
        );
        assert_eq!(
            longest_literal_piece("plain message here"),
            Some("plain message here")
        );
    }
}
