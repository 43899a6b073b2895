using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Afnio.Migrations.Migrations
{
    /// <summary>
    /// Jobs count the deliveries that died since they last made progress, so a job that keeps killing
    /// its worker is failed with job_delivery_limit instead of being delivered again.
    /// </summary>
    public partial class JobLostDeliveries : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "lost_deliveries",
                table: "jobs",
                type: "integer",
                nullable: false,
                defaultValue: 0);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "lost_deliveries",
                table: "jobs");
        }
    }
}
