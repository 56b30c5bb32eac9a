//! Okapi BM25 over term-id bags (the index's files and units) and over plain string documents
//! (the whole-file baseline of the benchmark).

use std::collections::HashMap;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// An inverted index over documents given as `(term id, weighted count)` bags.
pub(crate) struct Bm25 {
    postings: Vec<Vec<(u32, f32)>>,
    doc_len: Vec<f32>,
    avg_len: f32,
}

impl Bm25 {
    /// Takes the documents by value and frees each once it is in the postings, so the
    /// bags and the postings are not both held whole.
    pub fn new(n_terms: usize, docs: Vec<Vec<(u32, f32)>>) -> Bm25 {
        let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_terms];
        let mut doc_len = Vec::with_capacity(docs.len());
        for (d, bag) in docs.into_iter().enumerate() {
            let mut len = 0.0;
            for (t, c) in bag {
                postings[t as usize].push((d as u32, c));
                len += c;
            }
            doc_len.push(len);
        }
        for list in &mut postings {
            list.shrink_to_fit();
        }
        let avg_len = if doc_len.is_empty() {
            1.0
        } else {
            (doc_len.iter().sum::<f32>() / doc_len.len() as f32).max(1.0)
        };
        Bm25 {
            postings,
            doc_len,
            avg_len,
        }
    }

    pub fn n_docs(&self) -> usize {
        self.doc_len.len()
    }

    /// Inverse document frequency of a term (0 for terms no document has).
    pub fn idf(&self, term: u32) -> f32 {
        let n = self.n_docs() as f32;
        let df = self.postings.get(term as usize).map_or(0, Vec::len) as f32;
        if df == 0.0 {
            0.0
        } else {
            ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
        }
    }

    /// Each query term's share of one document's score.
    pub fn contributions(&self, doc: usize, query: &[(u32, f32)]) -> Vec<(u32, f32)> {
        let mut out = Vec::new();
        for &(t, w) in query {
            let Some(list) = self.postings.get(t as usize) else {
                continue;
            };
            if let Ok(k) = list.binary_search_by_key(&(doc as u32), |p| p.0) {
                let tf = list[k].1;
                let norm = K1 * (1.0 - B + B * self.doc_len[doc] / self.avg_len);
                out.push((t, w * self.idf(t) * tf * (K1 + 1.0) / (tf + norm)));
            }
        }
        out
    }

    /// Scores of every document for a query of `(term id, weight)`; dense.
    pub fn scores(&self, query: &[(u32, f32)]) -> Vec<f32> {
        self.scores_with(query, B)
    }

    /// Scores with another length normalisation `b` (0: none, 1: full).
    pub fn scores_with(&self, query: &[(u32, f32)], b: f32) -> Vec<f32> {
        let mut out = vec![0.0; self.n_docs()];
        for &(t, w) in query {
            let idf = self.idf(t);
            if idf == 0.0 {
                continue;
            }
            for &(d, tf) in &self.postings[t as usize] {
                let norm = K1 * (1.0 - b + b * self.doc_len[d as usize] / self.avg_len);
                out[d as usize] += w * idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        out
    }
}

/// BM25 over plain string documents, with its own vocabulary.
pub struct TextBm25 {
    vocab: HashMap<String, u32>,
    inner: Bm25,
}

impl TextBm25 {
    /// Each document is its list of terms (repeats count).
    pub fn new<I: IntoIterator<Item = Vec<String>>>(docs: I) -> TextBm25 {
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut bags = Vec::new();
        for doc in docs {
            let mut counts: HashMap<u32, f32> = HashMap::new();
            for term in doc {
                let next = vocab.len() as u32;
                let id = *vocab.entry(term).or_insert(next);
                *counts.entry(id).or_default() += 1.0;
            }
            bags.push(counts.into_iter().collect());
        }
        let inner = Bm25::new(vocab.len(), bags);
        TextBm25 { vocab, inner }
    }

    /// Document indices and scores, best first, at most `k`, zero scores left out.
    pub fn search(&self, query: &[String], k: usize) -> Vec<(usize, f32)> {
        let mut weights: HashMap<u32, f32> = HashMap::new();
        for term in query {
            if let Some(&id) = self.vocab.get(term) {
                *weights.entry(id).or_default() += 1.0;
            }
        }
        let q: Vec<(u32, f32)> = weights.into_iter().collect();
        top_k(&self.inner.scores(&q), k)
    }
}

/// The `k` best `(index, score)` pairs of a dense score vector, positive scores only, ties by index.
pub(crate) fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut v: Vec<(usize, f32)> = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, s)| s > 0.0)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(k);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn rare_terms_weigh_more_and_short_docs_win_ties() {
        let idx = TextBm25::new(vec![
            doc("parse header value header"),
            doc("parse body"),
            doc("parse header"),
            doc("unrelated words only here"),
        ]);
        let hits = idx.search(&doc("header"), 10);
        let order: Vec<usize> = hits.iter().map(|h| h.0).collect();
        assert_eq!(order.len(), 2);
        assert!(order.contains(&0) && order.contains(&2));
        let body = idx.search(&doc("parse body"), 1);
        assert_eq!(body[0].0, 1);
        assert!(idx.search(&doc("absent"), 10).is_empty());
    }
}
