//! Checks the pages' and the console's unit tests share on rendered HTML: tags and attributes
//! read as text, and the form rules every page keeps (each field labelled, each label and
//! description pointing at something, ids unique).

/// Each `<tag ...>` in `html`, as its text.
pub(crate) fn tags<'h>(html: &'h str, tag: &str) -> Vec<&'h str> {
    let open = format!("<{tag}");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&open) {
        let from = &rest[at..];
        let end = from.find('>').map_or(from.len(), |e| e + 1);
        let t = &from[..end];
        // `<form` must not match `<formx`: the next character ends the name.
        if t[open.len()..].starts_with([' ', '>', '\n']) {
            out.push(t);
        }
        rest = &from[end..];
    }
    out
}

/// The value of attribute `name` in the tag text `tag`.
pub(crate) fn attr<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    let len = tag[at..].find('"')?;
    Some(&tag[at..at + len])
}

/// The fields of page `name` are labelled: every visible input and select has a `<label
/// for=…>` (or an `aria-label`), every label points at a field, every `aria-describedby`
/// names an element, and no id repeats.
#[track_caller]
pub(crate) fn assert_fields_labelled(name: &str, html: &str) {
    let fields: Vec<&str> = ["input", "select", "textarea"]
        .into_iter()
        .flat_map(|t| tags(html, t))
        .filter(|t| attr(t, "type") != Some("hidden"))
        .collect();
    let ids: Vec<&str> = fields
        .iter()
        .copied()
        .chain(tags(html, "button"))
        .filter_map(|t| attr(t, "id"))
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{name}: ids are unique");
    let labels = tags(html, "label");
    let fors: Vec<&str> = labels.iter().filter_map(|t| attr(t, "for")).collect();
    assert_eq!(fors.len(), labels.len(), "{name}: every label has for");
    for f in &fors {
        assert!(ids.contains(f), "{name}: label for {f} has no field");
    }
    for field in &fields {
        let labelled = attr(field, "id").is_some_and(|id| fors.contains(&id))
            || attr(field, "aria-label").is_some_and(|l| !l.is_empty());
        assert!(labelled, "{name}: no label for {field}");
        for described in attr(field, "aria-describedby")
            .unwrap_or_default()
            .split(' ')
            .filter(|d| !d.is_empty())
        {
            assert!(
                html.contains(&format!("id=\"{described}\"")),
                "{name}: {described}"
            );
        }
    }
}
