//! The report pages: one self-contained HTML file per run or per swarm, charts inline as SVG.
//!
//! A run report is `DIR/index.html` (charts inline, so the one file can be mailed or attached),
//! the same charts as sibling `.svg` files for slides and docs, and `record.json`, the record
//! itself. Every text that came from a run (details, notes, names) is HTML-escaped. The pages
//! explain themselves in plain English for a reader who never read the code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use super::charts::{self, Bar, View};
use super::{NetChange, NodeChange, RunRecord, SeedSummary};

/// At most this many failing seeds are listed on a swarm page.
const FAILING_LISTED_MAX: usize = 500;
/// At most this many node and network events are listed under the timeline.
const FAULT_ROWS_MAX: usize = 500;

/// Writes `dir/index.html` (and the charts as sibling SVG files, and `record.json`); returns the
/// page's path. Creates `dir` if needed.
pub fn write_run_report(dir: &Path, record: &RunRecord) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let view = View::new(record);
    let timeline = charts::timeline(record, &view).map_err(draw_error)?;
    let operations = charts::operations(record, &view).map_err(draw_error)?;
    let mut partition_charts = Vec::new();
    for (index, partition) in view.partitions.iter().enumerate() {
        let name = file_safe(partition);
        let svg = charts::offsets(record, &view, partition, view.whole()).map_err(draw_error)?;
        let file = format!("offsets-{index}-{name}.svg");
        partition_charts.push(PartitionChart { partition: partition.clone(), file, svg, close_up: false });
        if let Some(window) = charts::story_window(record, &view, partition) {
            let svg = charts::offsets(record, &view, partition, window).map_err(draw_error)?;
            let file = format!("offsets-{index}-{name}-close-up.svg");
            partition_charts.push(PartitionChart { partition: partition.clone(), file, svg, close_up: true });
        }
    }
    std::fs::write(dir.join("timeline.svg"), &timeline)?;
    std::fs::write(dir.join("operations.svg"), &operations)?;
    for chart in &partition_charts {
        std::fs::write(dir.join(&chart.file), &chart.svg)?;
    }
    let json = serde_json::to_string(record).map_err(io::Error::other)?;
    std::fs::write(dir.join("record.json"), json)?;
    let page = run_page(record, &view, &timeline, &operations, &partition_charts);
    let path = dir.join("index.html");
    std::fs::write(&path, page)?;
    Ok(path)
}

/// Writes `dir/index.html`, a swarm's summary: failures by fault kind, anomaly kinds, and each
/// failing seed with its replay command. Creates `dir` if needed.
pub fn write_swarm_report(dir: &Path, seeds: &[SeedSummary]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let page = swarm_page(seeds).map_err(draw_error)?;
    let path = dir.join("index.html");
    std::fs::write(&path, page)?;
    Ok(path)
}

/// One offsets chart of a partition: the whole run, or the close-up of its loss.
struct PartitionChart {
    partition: String,
    file: String,
    svg: String,
    close_up: bool,
}

fn draw_error(error: Box<dyn std::error::Error>) -> io::Error {
    io::Error::other(format!("drawing a chart failed: {error}"))
}

/// Escapes text for HTML element content and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn seconds(t_ms: f64) -> String {
    format!("{:.3} s", t_ms / 1000.0)
}

const STYLE: &str = "
body { font-family: sans-serif; max-width: 1140px; margin: 1.5em auto; color: #1e1e1e; line-height: 1.45; }
h1 { font-size: 1.5em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { background: #f4f4f4; padding: 0 0.25em; }
.ok { color: #2d7d2d; font-weight: bold; } .fail { color: #c0262d; font-weight: bold; }
.observation { color: #8a5a00; }
.explain { background: #f7f9fc; border-left: 4px solid #1f5aa0; padding: 0.5em 1em; margin: 0.6em 0; }
figure { margin: 0.6em 0; } svg { max-width: 100%; height: auto; }
";

fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    )
}

fn run_page(
    record: &RunRecord,
    view: &View,
    timeline: &str,
    operations: &str,
    partition_charts: &[PartitionChart],
) -> String {
    let header = &record.header;
    let mut html = page_start(&format!("Seedlog run report: seed {}", header.seed));
    let _ = writeln!(
        html,
        "<h1>Seedlog run report: seed {}, {} workload</h1>",
        header.seed,
        escape(&header.workload)
    );
    html += &verdict_section(record);
    html += &options_table(record);
    html += READING_GUIDE;

    html += "<h2>Timeline</h2>\n";
    html += TIMELINE_LEGEND;
    let _ = writeln!(html, "<figure>{}</figure>", inline_svg(timeline));
    html += &faults_table(record);
    if view.partitions_omitted > 0 {
        let _ = writeln!(
            html,
            "<p>{} more partitions are not drawn (at most {} are); <code>record.json</code> holds them all.</p>",
            view.partitions_omitted,
            charts::PARTITIONS_DRAWN_MAX
        );
    }

    html += "<h2>Offsets per partition</h2>\n";
    html += OFFSETS_LEGEND;
    if partition_charts.is_empty() {
        html += "<p>This run recorded no partition offsets.</p>\n";
    }
    for chart in partition_charts {
        if chart.close_up {
            html += "<p>The same partition, close up around its anomalies: from the broker going down \
                     before them to its return.</p>\n";
        } else {
            let _ = writeln!(html, "<h3>Partition {}</h3>", escape(&chart.partition));
        }
        let _ = writeln!(
            html,
            "<figure>{}<figcaption>Also as <a href=\"{}\">{}</a>.</figcaption></figure>",
            inline_svg(&chart.svg),
            escape(&chart.file),
            escape(&chart.file)
        );
    }

    html += "<h2>Client operations</h2>\n";
    html += OPERATIONS_LEGEND;
    let _ = writeln!(html, "<figure>{}</figure>", inline_svg(operations));
    html += &operation_totals(record);

    html += "<h2>Anomalies and observations</h2>\n";
    html += ANOMALIES_LEGEND;
    html += &anomaly_table(record);

    html += "<h2>Notes</h2>\n";
    html += "<p>What the world wrote down for a reader as it happened, in time order.</p>\n";
    html += &notes_table(record);

    html += &limits_section(record);
    html += "<p>Files: <a href=\"timeline.svg\">timeline.svg</a>, <a href=\"operations.svg\">operations.svg</a>, \
             one <code>offsets-*.svg</code> per partition, and <a href=\"record.json\">record.json</a> (everything recorded).</p>\n";
    html += "</body>\n</html>\n";
    html
}

/// The chart without any XML prologue, ready to sit inside HTML.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => svg,
    }
}

fn verdict_section(record: &RunRecord) -> String {
    let mut html = String::new();
    match &record.header.verdict {
        Some(verdict) => {
            let (class, word) = if verdict.ok { ("ok", "passed") } else { ("fail", "FAILED") };
            let _ = write!(html, "<p>Verdict: <span class=\"{class}\">{word}</span>");
            if !verdict.anomaly_kinds.is_empty() {
                let _ = write!(html, "; anomalies: <b>{}</b>", escape(&verdict.anomaly_kinds.join(", ")));
            }
            if !verdict.observation_kinds.is_empty() {
                let _ = write!(
                    html,
                    "; observed (reported, allowed): <span class=\"observation\">{}</span>",
                    escape(&verdict.observation_kinds.join(", "))
                );
            }
            html += ".</p>\n";
        }
        None => html += "<p>Verdict: not recorded.</p>\n",
    }
    let _ = writeln!(
        html,
        "<p>Simulated time: {}. Brokers: {}. Partitions: {}.</p>",
        seconds(record.end_ms),
        escape(&record.header.brokers.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")),
        record.header.partitions.len()
    );
    if !record.header.replay.is_empty() {
        let _ = writeln!(html, "<p>Replay: <code>{}</code></p>", escape(&record.header.replay));
    }
    html
}

fn options_table(record: &RunRecord) -> String {
    if record.header.options.is_empty() {
        return String::new();
    }
    let mut html = String::from("<table>\n<tr><th>option</th><th>value</th></tr>\n");
    for (key, value) in &record.header.options {
        let _ = writeln!(html, "<tr><td>{}</td><td>{}</td></tr>", escape(key), escape(value));
    }
    html += "</table>\n";
    html
}

fn operation_totals(record: &RunRecord) -> String {
    if record.ops.counts.is_empty() {
        return "<p>This run recorded no client operations.</p>\n".to_string();
    }
    let mut html =
        String::from("<table>\n<tr><th>operation</th><th>ok</th><th>failed</th><th>indefinite</th></tr>\n");
    for (kind, buckets) in &record.ops.counts {
        let mut total = super::OutcomeCounts::default();
        for counts in buckets.values() {
            total.ok += counts.ok;
            total.failed += counts.failed;
            total.indefinite += counts.indefinite;
        }
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(kind),
            total.ok,
            total.failed,
            total.indefinite
        );
    }
    html += "</table>\n";
    html
}

fn anomaly_table(record: &RunRecord) -> String {
    if record.anomalies.is_empty() {
        return "<p>None: every check passed and nothing was observed.</p>\n".to_string();
    }
    let mut html = String::from(
        "<table>\n<tr><th>mark</th><th>time</th><th>kind</th><th>counts as</th><th>partition</th><th>offset</th><th>detail</th></tr>\n",
    );
    for (index, anomaly) in record.anomalies.iter().enumerate() {
        let (class, counts_as) =
            if anomaly.failing { ("fail", "failure") } else { ("observation", "observation (allowed)") };
        let _ = writeln!(
            html,
            "<tr><td>A{}</td><td class=\"num\">{}</td><td><b>{}</b></td><td class=\"{class}\">{counts_as}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            index + 1,
            anomaly.t_ms.map_or("found at the end".to_string(), seconds),
            escape(&anomaly.kind),
            escape(anomaly.partition.as_deref().unwrap_or("")),
            anomaly.offset.map_or(String::new(), |o| o.to_string()),
            escape(&anomaly.detail)
        );
    }
    html += "</table>\n";
    html
}

/// The node and network events under the timeline, in time order, folded away.
fn faults_table(record: &RunRecord) -> String {
    let mut events: Vec<(f64, String)> = record
        .node_events
        .iter()
        .map(|event| {
            let what = match &event.change {
                NodeChange::Down { why } => format!("broker {} down ({why})", event.node),
                NodeChange::Up => format!("broker {} up", event.node),
                NodeChange::Paused => format!("broker {} paused", event.node),
                NodeChange::Resumed => format!("broker {} resumed", event.node),
            };
            (event.t_ms, what)
        })
        .collect();
    events.extend(record.net_events.iter().map(|event| {
        let what = match &event.change {
            NetChange::Healed => "network healed".to_string(),
            change => format!("network cut: {}", change.label()),
        };
        (event.t_ms, what)
    }));
    if events.is_empty() {
        return String::new();
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0)); // Stable: same-time events keep their order.
    let mut html = format!(
        "<details><summary>Faults and recoveries, in time order ({})</summary>\n<table>\n<tr><th>time</th><th>event</th></tr>\n",
        events.len()
    );
    for (t_ms, what) in events.iter().take(FAULT_ROWS_MAX) {
        let _ = writeln!(html, "<tr><td class=\"num\">{}</td><td>{}</td></tr>", seconds(*t_ms), escape(what));
    }
    html += "</table>\n";
    if events.len() > FAULT_ROWS_MAX {
        let _ = writeln!(
            html,
            "<p>... and {} more in <code>record.json</code>.</p>",
            events.len() - FAULT_ROWS_MAX
        );
    }
    html += "</details>\n";
    html
}

fn notes_table(record: &RunRecord) -> String {
    if record.notes.is_empty() {
        return "<p>No notes.</p>\n".to_string();
    }
    let mut notes: Vec<&super::Note> = record.notes.iter().collect();
    notes.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms)); // Stable: same-time notes keep their order.
    let mut html = String::from("<table>\n<tr><th>time</th><th>node</th><th>note</th></tr>\n");
    for note in notes {
        let _ = writeln!(
            html,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            seconds(note.t_ms),
            note.node.map_or(String::new(), |n| format!("broker {n}")),
            escape(&note.text)
        );
    }
    html += "</table>\n";
    html
}

/// What the record's bounds dropped or thinned, so the reader knows the charts' limits.
fn limits_section(record: &RunRecord) -> String {
    let mut lines = Vec::new();
    let dropped = &record.dropped;
    for (count, what) in [
        (dropped.node_events, "node events"),
        (dropped.net_events, "network events"),
        (dropped.role_changes, "role changes"),
        (dropped.anomalies, "anomalies"),
        (dropped.notes, "notes"),
    ] {
        if count > 0 {
            lines.push(format!("{count} {what} past the bound were not recorded"));
        }
    }
    let listed = &record.ops.listed;
    if listed.pushed > listed.items.len() as u64 {
        lines.push(format!(
            "client operations: {} of {} kept one by one for the dots (evenly thinned); the counts are complete",
            listed.items.len(),
            listed.pushed
        ));
    }
    for (partition, record) in &record.partitions {
        for (node, replica) in &record.replicas {
            let series = &replica.offsets;
            if series.pushed > series.items.len() as u64 {
                lines.push(format!(
                    "{partition} on broker {node}: {} of {} offset changes drawn (evenly thinned, truncations kept first)",
                    series.items.len(),
                    series.pushed
                ));
            }
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut html = String::from("<h2>Limits of this record</h2>\n<ul>\n");
    for line in lines {
        let _ = writeln!(html, "<li>{}</li>", escape(&line));
    }
    html += "</ul>\n";
    html
}

const READING_GUIDE: &str = "<div class=\"explain\">
<p><b>How to read this report.</b> Everything here happened in simulated time (seconds on every
axis), in a simulated cluster run from one seed: the same seed replays it exactly. The charts share
one time axis, so read them top to bottom at the same horizontal position: a crash in the timeline
sits above the fall it caused in the offsets and the failures it caused in the client operations.</p>
<p><b>Kafka's words.</b> A partition is an append-only log; each record gets an <i>offset</i>
(0, 1, 2, ...). One broker is the partition's <i>leader</i> and takes the writes; the others are
<i>followers</i> and copy the leader's log by fetching. The <i>log end offset</i> of a copy is the
offset its next record will get (how many records it holds). The <i>in-sync replicas</i> are the
copies that keep up. A record is <i>committed</i> once every in-sync replica has it; the
<i>high watermark</i> is the offset below which everything is committed. Consumers only read
committed records. Each new leadership gets a higher <i>leader epoch</i>. A producer with
<code>acks=all</code> is told \"written\" only once the record is committed; with <code>acks=1</code>
as soon as the leader alone has it, which is faster but can lose the record if the leader fails.</p>
<p><b>An <code>acks=1</code> loss, step by step</b> (the close-up chart of a partition shows it
large). Just before a red \"down\" marker, look for hollow dots (records acknowledged with acks=1)
below the leader's solid line but above the other brokers' solid lines: the leader acknowledged
records that only it had. Then a grey marker (\"b2 leads e4\"): another broker becomes leader at a
higher epoch with its shorter log, so the next records get the same offsets again; a magenta cross
marks each acknowledged record that was overwritten. When the old leader comes back, its solid line
falls (\"b1 truncates 40 → 38\"): it throws away what the new leader never had, and its copy is gone
too. The notes table tells the same story in sentences.</p>
</div>
";

const TIMELINE_LEGEND: &str = "<div class=\"explain\"><p>One row per lane. <b>network</b>: a
yellow band is a time the network was cut; its text names the groups that could not reach each
other (<code>{1,2} | {3}</code>: brokers 1 and 2 talk, broker 3 reaches neither); the yellow tint
continues down every lane. <b>broker N</b>: green while the broker runs, red while it is down
(the text says why: a crash or power loss loses what was not yet on disk; a shutdown is clean),
grey hatching while it is paused (alive but frozen, like a long garbage-collection pause).
Then one row per partition copy: dark blue while that broker is the partition's <b>leader</b>,
light blue while it is a <b>follower</b>, pale grey when it has no role. <code>e3</code> is the
leader epoch: it grows by one with every new leadership, so two bands with different epochs are
different leaderships even on the same broker. Magenta dashed lines mark anomalies (A1, A2...
in the table below).</p></div>
";

const OFFSETS_LEGEND: &str = "<div class=\"explain\"><p>One colour per broker. The <b>solid
line</b> is that broker's log end offset (how many records its copy holds); the <b>dashed
line</b> is its high watermark (records below it are committed: every in-sync replica has them,
and consumers may read them). The dashed line trails the solid lines: a record is committed only
once the slowest in-sync copy has fetched it. <b>Dots</b> are records a producer was told were
written, at the time of the answer, filled for <code>acks=all</code>, hollow for <code>acks=1</code>;
a record at offset 38 is drawn at 38.5, between 38 and 39, so <b>a broker holds the record exactly
while that broker's solid line is above the dot</b>. A solid line that <b>falls</b> is a truncation: that broker threw records away to
match a new leader. A <b>gap</b> is a time the broker was down. Red dashed lines above the chart
mark a broker going down, grey ones a new leader (<code>b2 leads e4</code>: broker 2 leads at
epoch 4), magenta ones and crosses an anomaly at its time and offset.</p></div>
";

const OPERATIONS_LEGEND: &str = "<div class=\"explain\"><p>Every client request, counted by the
time it completed: <b>ok</b> (green, it happened), <b>failed</b> (red, it definitely did not
happen, e.g. the broker answered NOT_LEADER), <b>indefinite</b> (amber: the client cannot know,
e.g. a timeout; a write may or may not have happened, and a checker must allow both). Bursts of
failed and indefinite operations usually follow crashes and network cuts.</p></div>
";

const ANOMALIES_LEGEND: &str = "<div class=\"explain\"><p>A <b>failure</b> breaks a guarantee
Seedlog makes (an <code>acks=all</code> record lost, a value read that was never written...). An
<b>observation</b> is reported but allowed: an <code>acks=1</code> record lost in a leader crash is
Kafka's documented trade-off. Findings made by the checker at the end of the run have no time;
those the world saw happen are marked on the charts by their mark (A1, A2...).</p></div>
";

// The swarm page.

/// One fault kind over a swarm: seeds with it on, of which failing, and their anomaly kinds.
#[derive(Default)]
struct KindStats {
    on: u64,
    failing: u64,
    anomalies: BTreeMap<String, u64>,
}

impl KindStats {
    fn rate(&self) -> f64 {
        if self.on > 0 {
            self.failing as f64 / self.on as f64
        } else {
            0.0
        }
    }
}

fn swarm_page(seeds: &[SeedSummary]) -> Result<String, Box<dyn std::error::Error>> {
    let mut seeds: Vec<&SeedSummary> = seeds.iter().collect();
    seeds.sort_by_key(|s| s.seed);
    let total = seeds.len() as u64;
    let failing: Vec<&SeedSummary> = seeds.iter().copied().filter(|s| !s.ok).collect();
    let events: u64 = seeds.iter().map(|s| s.events).sum();
    let sim_ms: u64 = seeds.iter().map(|s| s.sim_ms).sum();
    let wall_ms: u64 = seeds.iter().map(|s| s.wall_ms).sum();
    let per_thread_seeds_per_s = if wall_ms > 0 { total as f64 * 1000.0 / wall_ms as f64 } else { 0.0 };
    let baseline = if total > 0 { failing.len() as f64 / total as f64 } else { 0.0 };

    // Per fault kind: seeds with it on, of which failing, and the failing seeds' anomaly kinds.
    let mut by_kind: BTreeMap<&str, KindStats> = BTreeMap::new();
    let mut by_anomaly: BTreeMap<&str, u64> = BTreeMap::new();
    for seed in &seeds {
        for kind in &seed.fault_mix {
            let entry = by_kind.entry(kind.as_str()).or_default();
            entry.on += 1;
            if !seed.ok {
                entry.failing += 1;
                for anomaly in &seed.anomaly_kinds {
                    *entry.anomalies.entry(anomaly.clone()).or_default() += 1;
                }
            }
        }
        for anomaly in &seed.anomaly_kinds {
            *by_anomaly.entry(anomaly.as_str()).or_default() += 1;
        }
    }
    let mut kinds: Vec<(&str, &KindStats)> = by_kind.iter().map(|(k, v)| (*k, v)).collect();
    kinds.sort_by(|a, b| b.1.rate().total_cmp(&a.1.rate()).then(a.0.cmp(b.0)));

    let mut html = page_start("Seedlog swarm report");
    html += "<h1>Seedlog swarm report</h1>\n";
    let _ = writeln!(
        html,
        "<p>{total} seeds: <span class=\"ok\">{} passed</span>, <span class=\"{}\">{} failed</span> ({:.2}%).</p>",
        total - failing.len() as u64,
        if failing.is_empty() { "ok" } else { "fail" },
        failing.len(),
        baseline * 100.0
    );
    html += "<table>\n";
    for (what, value) in [
        ("events (all seeds)", events.to_string()),
        ("simulated time (all seeds)", format!("{:.1} s", sim_ms as f64 / 1000.0)),
        ("wall time (sum over seeds)", format!("{:.1} s", wall_ms as f64 / 1000.0)),
        ("seeds per second, per thread", format!("{per_thread_seeds_per_s:.1}")),
        (
            "simulated seconds per wall second, per thread",
            format!("{:.0}", if wall_ms > 0 { sim_ms as f64 / wall_ms as f64 } else { 0.0 }),
        ),
    ] {
        let _ = writeln!(html, "<tr><td>{what}</td><td class=\"num\">{}</td></tr>", escape(&value));
    }
    html += "</table>\n";

    html += "<h2>Failures by fault kind</h2>\n";
    html += "<div class=\"explain\"><p>Each seed turns a random mix of fault kinds on (swarm testing). \
             For each kind: of the seeds that had it on, the share that failed. A kind well above the \
             dashed line (the failure rate over all seeds) is where to look first; a kind near it is \
             probably along for the ride.</p></div>\n";
    let rows: Vec<Bar> = kinds
        .iter()
        .map(|(kind, stats)| Bar {
            label: kind.to_string(),
            value: stats.rate() * 100.0,
            note: format!("{} of {} seeds", stats.failing, stats.on),
        })
        .collect();
    let chart = charts::bars(
        "Failing seeds among those with each fault kind on",
        &rows,
        "failing seeds (%)",
        Some((baseline * 100.0, format!("all seeds: {:.2}% failed", baseline * 100.0))),
    )?;
    let _ = writeln!(html, "<figure>{}</figure>", inline_svg(&chart));
    html += "<table>\n<tr><th>fault kind</th><th>seeds with it on</th><th>failing</th><th>failure rate</th><th>anomalies in those failing seeds (seeds)</th></tr>\n";
    for (kind, stats) in &kinds {
        let listed: Vec<String> = stats.anomalies.iter().map(|(a, n)| format!("{a} ({n})")).collect();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}%</td><td>{}</td></tr>",
            escape(kind),
            stats.on,
            stats.failing,
            stats.rate() * 100.0,
            escape(&listed.join(", "))
        );
    }
    html += "</table>\n";

    html += "<h2>Anomaly kinds</h2>\n";
    if by_anomaly.is_empty() {
        html += "<p>No seed failed.</p>\n";
    } else {
        let rows: Vec<Bar> = by_anomaly
            .iter()
            .map(|(kind, n)| Bar { label: kind.to_string(), value: *n as f64, note: format!("{n} seeds") })
            .collect();
        let chart = charts::bars("Seeds showing each anomaly kind", &rows, "seeds", None)?;
        let _ = writeln!(html, "<figure>{}</figure>", inline_svg(&chart));
    }

    html += "<h2>Failing seeds</h2>\n";
    if failing.is_empty() {
        html += "<p>None.</p>\n";
    } else {
        html += "<p>Each command replays the seed exactly and writes its run report into the named directory.</p>\n";
        html += "<table>\n<tr><th>seed</th><th>anomalies</th><th>fault kinds on</th><th>replay with a report</th></tr>\n";
        for seed in failing.iter().take(FAILING_LISTED_MAX) {
            let replay = if seed.replay.is_empty() {
                format!("seedlog-sim run --seed {}", seed.seed)
            } else {
                seed.replay.clone()
            };
            let _ = writeln!(
                html,
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td><code>{} --report report-seed-{}</code></td></tr>",
                seed.seed,
                escape(&seed.anomaly_kinds.join(", ")),
                escape(&seed.fault_mix.join(", ")),
                escape(&replay),
                seed.seed
            );
        }
        html += "</table>\n";
        if failing.len() > FAILING_LISTED_MAX {
            let _ = writeln!(html, "<p>... and {} more.</p>", failing.len() - FAILING_LISTED_MAX);
        }
    }
    html += "</body>\n</html>\n";
    Ok(html)
}
