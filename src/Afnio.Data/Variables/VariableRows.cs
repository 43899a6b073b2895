using Microsoft.EntityFrameworkCore;

namespace Afnio.Data.Variables;

/// <summary>Bulk writes of variables made by jobs (gradients, parameter snapshots): one statement for any number of rows.</summary>
public static class VariableRows
{
    /// <summary>Inserts new leaf variables, each with its own project, flags and creation time.</summary>
    public static Task InsertAsync(this AfnioDbContext db, IReadOnlyList<Variable> rows) =>
        rows.Count == 0
            ? Task.CompletedTask
            : db.Database.ExecuteSqlAsync($"""
                INSERT INTO variables (id, project_id, data, data_kind, role, requires_grad, is_parameter, retain_grad, output_nr, grad_fn_id, created_at)
                SELECT t.id, t.project, t.data::jsonb, t.kind, t.role, t.rg, t.param, FALSE, 0, NULL, t.at
                FROM unnest({rows.Select(v => v.Id).ToArray()}::uuid[], {rows.Select(v => v.ProjectId).ToArray()}::uuid[],
                            {rows.Select(v => v.Data).ToArray()}::text[], {rows.Select(v => v.DataKind).ToArray()}::text[],
                            {rows.Select(v => v.Role).ToArray()}::text[], {rows.Select(v => v.RequiresGrad).ToArray()}::boolean[],
                            {rows.Select(v => v.IsParameter).ToArray()}::boolean[], {rows.Select(v => v.CreatedAt).ToArray()}::timestamptz[])
                    AS t(id, project, data, kind, role, rg, param, at)
                """);
}
