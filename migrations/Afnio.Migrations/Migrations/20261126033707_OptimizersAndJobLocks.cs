using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Afnio.Migrations.Migrations
{
    /// <inheritdoc />
    public partial class OptimizersAndJobLocks : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "lock_key",
                table: "jobs",
                type: "character varying(128)",
                maxLength: 128,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "optimizers",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    project_id = table.Column<Guid>(type: "uuid", nullable: false),
                    type = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    defaults = table.Column<string>(type: "jsonb", nullable: false),
                    param_groups = table.Column<string>(type: "jsonb", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_optimizers", x => x.id);
                    table.ForeignKey(
                        name: "fk_optimizers_projects_project_id",
                        column: x => x.project_id,
                        principalTable: "projects",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "optimizer_params",
                columns: table => new
                {
                    optimizer_id = table.Column<Guid>(type: "uuid", nullable: false),
                    variable_id = table.Column<Guid>(type: "uuid", nullable: false),
                    group_index = table.Column<int>(type: "integer", nullable: false),
                    position = table.Column<int>(type: "integer", nullable: false),
                    momentum_buffer = table.Column<string>(type: "jsonb", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_optimizer_params", x => new { x.optimizer_id, x.variable_id });
                    table.ForeignKey(
                        name: "fk_optimizer_params_optimizers_optimizer_id",
                        column: x => x.optimizer_id,
                        principalTable: "optimizers",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "fk_optimizer_params_variables_variable_id",
                        column: x => x.variable_id,
                        principalTable: "variables",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_jobs_lock_key_unfinished",
                table: "jobs",
                column: "lock_key",
                unique: true,
                filter: "lock_key IS NOT NULL AND status IN ('queued', 'running', 'cancelling')");

            migrationBuilder.CreateIndex(
                name: "ix_optimizer_params_optimizer_id_group_index_position",
                table: "optimizer_params",
                columns: new[] { "optimizer_id", "group_index", "position" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_optimizer_params_variable_id",
                table: "optimizer_params",
                column: "variable_id");

            migrationBuilder.CreateIndex(
                name: "ix_optimizers_project_id_id",
                table: "optimizers",
                columns: new[] { "project_id", "id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "optimizer_params");

            migrationBuilder.DropTable(
                name: "optimizers");

            migrationBuilder.DropIndex(
                name: "ix_jobs_lock_key_unfinished",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "lock_key",
                table: "jobs");
        }
    }
}
