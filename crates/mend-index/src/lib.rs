//! mend-index: repository index and localization. Not built yet (issue "Repository index").
