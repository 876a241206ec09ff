// Post the retraining report on the pull request, or update the comment an earlier run posted.
//
// Called by actions/github-script in .github/workflows/retrain.yml:
//   const upsertReportComment = require('./scripts/pr_comment.js');
//   await upsertReportComment({github, context, core}, 'reports/compare/report.md');
// The comment carries a hidden marker, so each pull request keeps ONE report comment that later
// runs edit in place instead of piling up new ones. tests/scenarios/test_workflows.py runs it under node
// with an in-memory stand-in for the `github` client.
'use strict';

const fs = require('fs');

const MARKER = '<!-- charlstm-retrain-report -->';
// GitHub rejects comment bodies over 65536 characters; leave room for the marker and the footer.
const MAX_REPORT_CHARS = 60000;

module.exports = async function upsertReportComment({ github, context, core }, reportPath) {
  let report = fs.readFileSync(reportPath, 'utf8');
  if (report.length > MAX_REPORT_CHARS) {
    report = `${report.slice(0, MAX_REPORT_CHARS)}\n\n_(cut: the full report is in the run's summary)_`;
  }
  const { owner, repo } = context.repo;
  const runUrl = `${context.serverUrl}/${owner}/${repo}/actions/runs/${context.runId}`;
  const body = `${MARKER}\n${report}\n\n_From [retrain run ${context.runId}](${runUrl})._\n`;

  const issue = { owner, repo, issue_number: context.issue.number };
  const comments = await github.paginate(github.rest.issues.listComments, issue);
  const previous = comments.find(
    (comment) => comment.user && comment.user.type === 'Bot' && (comment.body || '').includes(MARKER),
  );
  if (previous) {
    await github.rest.issues.updateComment({ owner, repo, comment_id: previous.id, body });
    core.info(`updated ${previous.html_url}`);
  } else {
    const { data } = await github.rest.issues.createComment({ ...issue, body });
    core.info(`posted ${data.html_url}`);
  }
};
