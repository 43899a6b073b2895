using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Afnio.Migrations.Migrations
{
    /// <inheritdoc />
    public partial class AutodiffGraphAndJobSteps : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterColumn<string>(
                name: "error_message",
                table: "jobs",
                type: "character varying(4000)",
                maxLength: 4000,
                nullable: true,
                oldClrType: typeof(string),
                oldType: "text",
                oldNullable: true);

            migrationBuilder.AddColumn<string>(
                name: "arguments",
                table: "jobs",
                type: "jsonb",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "attempts",
                table: "jobs",
                type: "integer",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.AddColumn<long>(
                name: "event_count",
                table: "jobs",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "lease_expires_at",
                table: "jobs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "lease_owner",
                table: "jobs",
                type: "character varying(200)",
                maxLength: 200,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "job_events",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    job_id = table.Column<Guid>(type: "uuid", nullable: false),
                    seq = table.Column<long>(type: "bigint", nullable: false),
                    type = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    data = table.Column<string>(type: "jsonb", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_job_events", x => x.id);
                    table.ForeignKey(
                        name: "fk_job_events_jobs_job_id",
                        column: x => x.job_id,
                        principalTable: "jobs",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "job_steps",
                columns: table => new
                {
                    job_id = table.Column<Guid>(type: "uuid", nullable: false),
                    step_key = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    result = table.Column<string>(type: "jsonb", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_job_steps", x => new { x.job_id, x.step_key });
                    table.ForeignKey(
                        name: "fk_job_steps_jobs_job_id",
                        column: x => x.job_id,
                        principalTable: "jobs",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "nodes",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    project_id = table.Column<Guid>(type: "uuid", nullable: false),
                    name = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    next_functions = table.Column<string>(type: "jsonb", nullable: false),
                    saved_context = table.Column<string>(type: "jsonb", nullable: true),
                    released = table.Column<bool>(type: "boolean", nullable: false),
                    released_by_job_id = table.Column<Guid>(type: "uuid", nullable: true),
                    variable_id = table.Column<Guid>(type: "uuid", nullable: true),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_nodes", x => x.id);
                    table.ForeignKey(
                        name: "fk_nodes_projects_project_id",
                        column: x => x.project_id,
                        principalTable: "projects",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "fk_nodes_variables_variable_id",
                        column: x => x.variable_id,
                        principalTable: "variables",
                        principalColumn: "id",
                        onDelete: ReferentialAction.SetNull);
                });

            migrationBuilder.CreateIndex(
                name: "ix_jobs_project_id_type_id",
                table: "jobs",
                columns: new[] { "project_id", "type", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_job_events_job_id_seq",
                table: "job_events",
                columns: new[] { "job_id", "seq" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_nodes_project_id_id",
                table: "nodes",
                columns: new[] { "project_id", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_nodes_variable_id",
                table: "nodes",
                column: "variable_id",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "job_events");

            migrationBuilder.DropTable(
                name: "job_steps");

            migrationBuilder.DropTable(
                name: "nodes");

            migrationBuilder.DropIndex(
                name: "ix_jobs_project_id_type_id",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "arguments",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "attempts",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "event_count",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "lease_expires_at",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "lease_owner",
                table: "jobs");

            migrationBuilder.AlterColumn<string>(
                name: "error_message",
                table: "jobs",
                type: "text",
                nullable: true,
                oldClrType: typeof(string),
                oldType: "character varying(4000)",
                oldMaxLength: 4000,
                oldNullable: true);
        }
    }
}
