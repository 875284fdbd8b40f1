//! The sliding 24-hour roll-up on PostgreSQL (what it is: `crate::window`).
//!
//! Invariant, at every commit of a writer (they are serialized by the writers' advisory
//! lock): for each windowed dimension and value, `rollup_window.count` =
//! SUM(`rollup_hourly.count`) over hours `W - 24 ..= W`. Values are stored NUL-escaped
//! like `rollup_hourly`'s and matched by md5 like them.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};

use super::text::{dec, enc};
use crate::types::Dimension;
use crate::window::{answers, covers, plan, Move, Ranker, DIMS, HOUR_COUNTER, SPAN};
use crate::Result;

fn dim_codes() -> Vec<i16> {
    DIMS.iter().map(|d| d.code() as i16).collect()
}

/// The window's current hour `W`, or `None` before the first build.
pub(super) async fn current_hour(c: &impl GenericClient) -> Result<Option<i64>> {
    let st = c
        .prepare_cached("SELECT value FROM counters WHERE name = $1")
        .await?;
    let w: Option<i64> = c.query_opt(&st, &[&HOUR_COUNTER]).await?.map(|r| r.get(0));
    Ok(w.filter(|&w| w >= 0))
}

/// Moves the window to `now_hour` (never backwards) and returns `W`. Call under the
/// writers' lock, before the transaction's roll-up increments are written.
pub(super) async fn advance(tx: &Transaction<'_>, now_hour: i64) -> Result<i64> {
    match plan(current_hour(tx).await?, now_hour) {
        Move::Stay(w) => return Ok(w),
        Move::Shift { out, came_in } => {
            // Summed per value first: one upsert may not touch a row twice here.
            let st = tx
                .prepare_cached(
                    "INSERT INTO rollup_window AS r (dim, value, count)
                     SELECT dim, value, SUM(CASE WHEN hour <= $2 THEN -count ELSE count END)
                     FROM rollup_hourly
                     WHERE dim = ANY($5)
                       AND ((hour >= $1 AND hour <= $2) OR (hour >= $3 AND hour <= $4))
                     GROUP BY dim, value
                     ON CONFLICT (dim, md5(value)) DO UPDATE SET count = r.count + excluded.count",
                )
                .await?;
            tx.execute(&st, &[&out.0, &out.1, &came_in.0, &came_in.1, &dim_codes()])
                .await?;
            drop_zero(tx).await?;
        }
        Move::Rebuild => rebuild(tx, now_hour).await?,
    }
    let st = tx
        .prepare_cached("UPDATE counters SET value = $2 WHERE name = $1")
        .await?;
    tx.execute(&st, &[&HOUR_COUNTER, &now_hour]).await?;
    Ok(now_hour)
}

async fn drop_zero(tx: &Transaction<'_>) -> Result<()> {
    let st = tx
        .prepare_cached("DELETE FROM rollup_window WHERE dim = ANY($1) AND count = 0")
        .await?;
    tx.execute(&st, &[&dim_codes()]).await?;
    Ok(())
}

/// Recomputes the window for `W = hour` from the hourly roll-ups.
async fn rebuild(tx: &Transaction<'_>, hour: i64) -> Result<()> {
    tx.execute("DELETE FROM rollup_window", &[]).await?;
    let st = tx
        .prepare_cached(
            "INSERT INTO rollup_window (dim, value, count)
             SELECT dim, value, SUM(count) FROM rollup_hourly
             WHERE dim = ANY($1) AND hour >= $2 AND hour <= $3
             GROUP BY dim, value HAVING SUM(count) <> 0",
        )
        .await?;
    tx.execute(&st, &[&dim_codes(), &(hour - SPAN), &hour])
        .await?;
    Ok(())
}

/// Adds a transaction's roll-up increments `(dim, hour, value, delta)` (values already
/// NUL-escaped) that fall inside the window `w`, then drops rows brought to zero.
pub(super) async fn add(
    tx: &Transaction<'_>,
    w: i64,
    rows: &[(i16, i64, String, i64)],
) -> Result<()> {
    let mut sums: HashMap<(i16, &str), i64> = HashMap::new();
    for (dim, hour, value, n) in rows {
        if covers(w, i64::from(*dim), *hour) {
            *sums.entry((*dim, value.as_str())).or_default() += n;
        }
    }
    sums.retain(|_, n| *n != 0);
    if sums.is_empty() {
        return Ok(());
    }
    let negative = sums.values().any(|n| *n < 0);
    let mut sorted: Vec<((i16, &str), i64)> = sums.into_iter().collect();
    sorted.sort_unstable();
    let dims: Vec<i16> = sorted.iter().map(|((d, _), _)| *d).collect();
    let values: Vec<&str> = sorted.iter().map(|((_, v), _)| *v).collect();
    let counts: Vec<i64> = sorted.iter().map(|(_, n)| *n).collect();
    let st = tx
        .prepare_cached(
            "INSERT INTO rollup_window AS r (dim, value, count)
             SELECT * FROM unnest($1::smallint[], $2::text[], $3::bigint[])
             ON CONFLICT (dim, md5(value)) DO UPDATE SET count = r.count + excluded.count",
        )
        .await?;
    tx.execute(&st, &[&dims, &values, &counts]).await?;
    if negative {
        drop_zero(tx).await?;
    }
    Ok(())
}

/// Moves a window that fell behind the clock (no ingest for a while) to `now_hour`;
/// `true` when it moved. Run every minute so top-N over the last day keeps reading the
/// window through quiet hours.
pub(super) async fn catch_up(c: &mut deadpool_postgres::Client, now_hour: i64) -> Result<bool> {
    if current_hour(&*c).await?.is_some_and(|w| w >= now_hour) {
        return Ok(false);
    }
    let tx = c.transaction().await?;
    super::write::lock_writers(&tx).await?;
    let before = current_hour(&tx).await?;
    let w = advance(&tx, now_hour).await?;
    tx.commit().await?;
    Ok(before != Some(w))
}

/// Window rows read per round trip at first (doubling after): a top 10 usually needs
/// only a few dozen.
const FIRST_CHUNK: i64 = 128;

/// Top `limit` values of `dim` over the hour buckets `[lo, hi)` from the window when
/// [`answers`] says it can; `None` means: sum the hourly rows instead.
///
/// Reads under READ COMMITTED (each statement its own snapshot): `W` is read again at
/// the end, and a window that moved meanwhile gives `None`, never mixed hours.
pub(super) async fn top(
    c: &impl GenericClient,
    dim: Dimension,
    lo: i64,
    hi: i64,
    limit: usize,
) -> Result<Option<Vec<(String, u64)>>> {
    let Some(w) = current_hour(c).await? else {
        return Ok(None);
    };
    if !answers(w, dim, lo, hi, limit) {
        return Ok(None);
    }
    let code = dim.code() as i16;
    let sums_st = c
        .prepare_cached(
            "SELECT value, SUM(count)::bigint FROM rollup_hourly
             WHERE dim = $1 AND hour >= $2 AND hour < $3 GROUP BY value",
        )
        .await?;
    let sums = |from: i64, to: i64| {
        let st = sums_st.clone();
        async move {
            let mut out: HashMap<String, i64> = HashMap::new();
            if from < to {
                for r in c.query(&st, &[&code, &from, &to]).await? {
                    out.insert(dec(r.get(0)), r.get(1));
                }
            }
            Result::Ok(out)
        }
    };
    let skipped = sums(w - SPAN, lo).await?;
    let added = sums(w + 1, hi).await?;
    let mut ranker = Ranker::new(limit, skipped, added);
    // Pages in the count index's own order (ties by value are the ranker's business):
    // with that ORDER BY and a LIMIT the planner reads the index whatever its statistics
    // say, where ordering by value too made it sort the whole table (30 ms instead of
    // 0.2 ms at 60,000 values). The next page starts at the last count read, past the
    // rows already read with that count.
    let page = c
        .prepare_cached(
            "SELECT value, count FROM rollup_window
             WHERE dim = $1 AND count > 0 AND count <= $2
             ORDER BY count DESC LIMIT $3 OFFSET $4",
        )
        .await?;
    let (mut at_count, mut seen_at_count) = (i64::MAX, 0i64);
    let mut chunk = FIRST_CHUNK.max(2 * limit as i64);
    'pages: loop {
        let rows = c
            .query(&page, &[&code, &at_count, &chunk, &seen_at_count])
            .await?;
        let full = rows.len() as i64 == chunk;
        for r in rows {
            let (value, n): (String, i64) = (r.get(0), r.get(1));
            if n == at_count {
                seen_at_count += 1;
            } else {
                (at_count, seen_at_count) = (n, 1);
            }
            if !ranker.offer(dec(value), n) {
                break 'pages;
            }
        }
        if !full {
            break;
        }
        chunk *= 2;
    }
    let mut late = HashMap::new();
    let one = c
        .prepare_cached("SELECT count FROM rollup_window WHERE dim = $1 AND md5(value) = md5($2)")
        .await?;
    for value in ranker.late_values() {
        let wc: Option<i64> = c
            .query_opt(&one, &[&code, &enc(&value).as_ref()])
            .await?
            .map(|r| r.get(0));
        late.insert(value, wc.unwrap_or(0));
    }
    if current_hour(c).await? != Some(w) {
        return Ok(None);
    }
    Ok(Some(ranker.finish(&late)))
}
