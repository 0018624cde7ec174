//! The report every benchmark ends with: a table, then one JSON line holding the same figures.

/// Prints `rows` (name, value, unit) as a table, then as one JSON object keyed `name [unit]`.
pub fn print(rows: &[(String, f64, &str)]) {
    let width = rows
        .iter()
        .map(|(name, _, _)| name.len())
        .max()
        .unwrap_or(9)
        .max(9);
    println!("{:<width$} {:>14}  unit", "benchmark", "value");
    for (name, value, unit) in rows {
        println!("{name:<width$} {value:>14.1}  {unit}");
    }
    let json: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .map(|(name, value, unit)| {
            (
                format!("{name} [{unit}]"),
                serde_json::json!((value * 10.0).round() / 10.0),
            )
        })
        .collect();
    println!("{}", serde_json::Value::Object(json));
}
