//! The repo map: the best-ranked files as skeletons (signatures with line numbers, no
//! bodies), fitted to a token budget, for the agent's first prompt.

use std::collections::HashSet;

use serde::Serialize;

use crate::index::Index;
use crate::lang::SymbolKind;
use crate::rank::Localization;

/// Token estimate used for budgets: one token per 3 bytes, rounded up. Tokenizers of the
/// GPT-4/Llama-3 families give about 3.5–4 bytes per token on code signatures, so the
/// estimate errs on the side of staying under the budget.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(3)
}

#[derive(Debug, Clone, Serialize)]
pub struct RepoMap {
    pub text: String,
    /// `estimate_tokens(&text)`; never more than the budget asked for.
    pub tokens: usize,
    /// Files shown, in order.
    pub files: Vec<String>,
    /// Files that were shown only in part (their best-ranked definitions).
    pub partial: Vec<String>,
}

/// Estimated on the joined text, so the map as a whole stays within the budget.
fn fits(text: &str, more: &str, budget: usize) -> bool {
    (text.len() + more.len()).div_ceil(3) <= budget
}

impl Index {
    /// Renders the files of `loc` in rank order as skeletons until `budget_tokens` is spent.
    /// A file whose whole skeleton does not fit is shown with just its ranked definitions and
    /// their enclosing classes.
    pub fn repo_map(&self, loc: &Localization, budget_tokens: usize) -> RepoMap {
        let mut map = RepoMap {
            text: String::new(),
            tokens: 0,
            files: Vec::new(),
            partial: Vec::new(),
        };
        for ranked in &loc.files {
            let Some(f) = self.file_id(&ranked.path) else {
                continue;
            };
            if budget_tokens.saturating_sub(estimate_tokens(&map.text)) < 8 {
                break;
            }
            let full = self.skeleton(f, None);
            if full.lines().count() < 2 {
                // No definitions to show (an `__init__.py` of imports, a data module).
                continue;
            }
            if fits(&map.text, &full, budget_tokens) {
                map.text.push_str(&full);
                map.files.push(ranked.path.clone());
                continue;
            }
            // The file's best-ranked definitions, as many as fit.
            let best: Vec<(u32, &str)> = loc
                .symbols
                .iter()
                .filter(|s| s.path == ranked.path)
                .map(|s| (s.line, s.name.as_str()))
                .collect();
            let mut sizes: Vec<usize> = [5, 2, 1]
                .iter()
                .map(|&k| k.min(best.len()))
                .filter(|&k| k > 0)
                .collect();
            sizes.dedup();
            for k in sizes {
                let wanted: HashSet<(u32, &str)> = best.iter().take(k).copied().collect();
                let part = self.skeleton(f, Some(&wanted));
                if fits(&map.text, &part, budget_tokens) {
                    map.text.push_str(&part);
                    map.files.push(ranked.path.clone());
                    map.partial.push(ranked.path.clone());
                    break;
                }
            }
        }
        map.tokens = estimate_tokens(&map.text);
        map
    }

    /// One file's skeleton: every class, function and method (not nested in a function), with
    /// line numbers, indented by nesting. With `only`, just those definitions and their
    /// enclosing ones, and a count of what was left out.
    fn skeleton(&self, f: usize, only: Option<&HashSet<(u32, &str)>>) -> String {
        let data = &self.files[f];
        let syms = &self.symbols[data.symbols.clone()];
        let mut keep: Vec<bool> = syms.iter().map(|s| s.unit).collect();
        if let Some(only) = only {
            keep = vec![false; syms.len()];
            for (k, s) in syms.iter().enumerate() {
                if only.contains(&(s.start_line, s.qualified_name.as_str())) {
                    let mut cur = Some(data.symbols.start + k);
                    while let Some(i) = cur {
                        if self.symbols[i].kind == SymbolKind::Module {
                            break;
                        }
                        keep[i - data.symbols.start] = true;
                        cur = self.symbols[i].parent;
                    }
                }
            }
        }
        let width = data.info.lines.to_string().len();
        let mut out = format!("{}:\n", data.info.path);
        let mut shown = 0;
        for (k, s) in syms.iter().enumerate() {
            if !keep[k] || s.kind == SymbolKind::Module {
                continue;
            }
            let depth = self.depth(data.symbols.start + k);
            out.push_str(&format!(
                "{:>width$}: {}{}\n",
                s.start_line,
                "    ".repeat(depth),
                s.signature
            ));
            shown += 1;
        }
        let total = syms.iter().filter(|s| s.unit).count();
        if only.is_some() && total > shown {
            out.push_str(&format!(
                "{:>width$}  … {} more definitions\n",
                "",
                total - shown
            ));
        }
        out.push('\n');
        out
    }

    fn depth(&self, mut i: usize) -> usize {
        let mut d = 0;
        while let Some(p) = self.symbols[i].parent {
            if self.symbols[p].kind == SymbolKind::Module {
                break;
            }
            d += 1;
            i = p;
        }
        d
    }
}

/// The code of the best-ranked functions and classes, for the agent's first prompt: the
/// repo map first (a share of the budget), then each ranked definition's source in rank
/// order while it fits. Whole files are too big (a quarter of SWE-bench issues' gold files
/// alone pass 25k tokens); the ranked definitions are what the fix touches.
#[derive(Debug, Clone, Serialize)]
pub struct ContextPack {
    pub text: String,
    /// `estimate_tokens(&text)`; never more than the budget asked for.
    pub tokens: usize,
    /// `path::Qualified.name` of each definition whose code is in the pack, in order.
    pub functions: Vec<String>,
    /// Ranked definitions left out because they did not fit.
    pub left_out: usize,
}

/// A class's code in a pack is its body up to its first method: the methods come on their
/// own when they rank.
const CLASS_HEAD_LINES: usize = 40;

impl Index {
    /// Packs the ranked definitions of `loc` with their code (read by `read`, a file's text
    /// by path) within `budget_tokens`, after a repo map of `map_share` of the budget. A
    /// definition inside one already packed is not repeated.
    pub fn context_pack(
        &self,
        loc: &Localization,
        budget_tokens: usize,
        map_share: f32,
        mut read: impl FnMut(&str) -> Option<String>,
    ) -> ContextPack {
        let map_budget = (budget_tokens as f32 * map_share.clamp(0.0, 1.0)) as usize;
        let map = self.repo_map(loc, map_budget);
        let mut pack = ContextPack {
            text: map.text,
            tokens: 0,
            functions: Vec::new(),
            left_out: 0,
        };
        let mut texts: std::collections::HashMap<String, Option<Vec<String>>> =
            std::collections::HashMap::new();
        let mut packed: Vec<(String, u32, u32)> = Vec::new();
        for s in &loc.symbols {
            if packed
                .iter()
                .any(|(p, lo, hi)| *p == s.path && *lo <= s.line && s.end_line <= *hi)
            {
                pack.functions.push(format!("{}::{}", s.path, s.name));
                continue;
            }
            let lines = texts
                .entry(s.path.clone())
                .or_insert_with(|| read(&s.path).map(|t| t.lines().map(String::from).collect()));
            let Some(lines) = lines else { continue };
            let lo = (s.line as usize).saturating_sub(1).min(lines.len());
            let mut hi = (s.end_line as usize).min(lines.len()).max(lo);
            if s.kind == SymbolKind::Class {
                hi = hi.min(lo + CLASS_HEAD_LINES);
            }
            let mut block = format!("{}:{}-{}\n", s.path, lo + 1, hi);
            for l in &lines[lo..hi] {
                block.push_str(l);
                block.push('\n');
            }
            block.push('\n');
            if !fits(&pack.text, &block, budget_tokens) {
                pack.left_out += 1;
                continue;
            }
            pack.text.push_str(&block);
            pack.functions.push(format!("{}::{}", s.path, s.name));
            if s.kind != SymbolKind::Class {
                packed.push((s.path.clone(), s.line, s.end_line));
            }
        }
        pack.tokens = estimate_tokens(&pack.text);
        pack
    }
}
