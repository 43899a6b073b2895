using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Afnio.Migrations.Migrations
{
    /// <inheritdoc />
    public partial class TrainingRuns : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "config",
                table: "runs",
                type: "jsonb",
                nullable: true);

            migrationBuilder.AddColumn<Guid>(
                name: "job_id",
                table: "runs",
                type: "uuid",
                nullable: true);

            migrationBuilder.AddColumn<Guid>(
                name: "program_id",
                table: "runs",
                type: "uuid",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "summary",
                table: "runs",
                type: "jsonb",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "programs",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    project_id = table.Column<Guid>(type: "uuid", nullable: false),
                    name = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    description = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: true),
                    definition = table.Column<string>(type: "jsonb", nullable: false),
                    current_version = table.Column<int>(type: "integer", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_programs", x => x.id);
                    table.ForeignKey(
                        name: "fk_programs_projects_project_id",
                        column: x => x.project_id,
                        principalTable: "projects",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "program_versions",
                columns: table => new
                {
                    program_id = table.Column<Guid>(type: "uuid", nullable: false),
                    version = table.Column<int>(type: "integer", nullable: false),
                    parameters = table.Column<string>(type: "jsonb", nullable: false),
                    source = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    run_id = table.Column<Guid>(type: "uuid", nullable: true),
                    checkpoint_id = table.Column<Guid>(type: "uuid", nullable: true),
                    metric = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    score = table.Column<double>(type: "double precision", nullable: true),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_program_versions", x => new { x.program_id, x.version });
                    table.ForeignKey(
                        name: "fk_program_versions_programs_program_id",
                        column: x => x.program_id,
                        principalTable: "programs",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "run_checkpoints",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    project_id = table.Column<Guid>(type: "uuid", nullable: false),
                    run_id = table.Column<Guid>(type: "uuid", nullable: true),
                    program_id = table.Column<Guid>(type: "uuid", nullable: true),
                    kind = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    epoch = table.Column<int>(type: "integer", nullable: false),
                    batch = table.Column<int>(type: "integer", nullable: true),
                    state = table.Column<string>(type: "jsonb", nullable: false),
                    progress = table.Column<string>(type: "jsonb", nullable: false),
                    validation = table.Column<string>(type: "jsonb", nullable: true),
                    score = table.Column<double>(type: "double precision", nullable: true),
                    cost_usd = table.Column<decimal>(type: "numeric(18,8)", precision: 18, scale: 8, nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_run_checkpoints", x => x.id);
                    table.ForeignKey(
                        name: "fk_run_checkpoints_programs_program_id",
                        column: x => x.program_id,
                        principalTable: "programs",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "fk_run_checkpoints_projects_project_id",
                        column: x => x.project_id,
                        principalTable: "projects",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "fk_run_checkpoints_runs_run_id",
                        column: x => x.run_id,
                        principalTable: "runs",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_programs_project_id_id",
                table: "programs",
                columns: new[] { "project_id", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_run_checkpoints_program_id",
                table: "run_checkpoints",
                column: "program_id");

            migrationBuilder.CreateIndex(
                name: "ix_run_checkpoints_project_id_id",
                table: "run_checkpoints",
                columns: new[] { "project_id", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_run_checkpoints_run_id_id",
                table: "run_checkpoints",
                columns: new[] { "run_id", "id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "program_versions");

            migrationBuilder.DropTable(
                name: "run_checkpoints");

            migrationBuilder.DropTable(
                name: "programs");

            migrationBuilder.DropColumn(
                name: "config",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "job_id",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "program_id",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "summary",
                table: "runs");
        }
    }
}
