using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Afnio.Migrations.Migrations
{
    /// <summary>
    /// Every backward node is now named as afnio's client sees it, PyTorch style with a trailing 0:
    /// the chat-completion and LM-judge nodes stored before keep working under their new names.
    /// </summary>
    public partial class BackwardNodeNamesEndInZero : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("UPDATE nodes SET name = 'ChatCompletionBackward0' WHERE name = 'ChatCompletionBackward';");
            migrationBuilder.Sql("UPDATE nodes SET name = 'LMJudgeEvaluatorBackward0' WHERE name = 'LMJudgeEvaluatorBackward';");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("UPDATE nodes SET name = 'ChatCompletionBackward' WHERE name = 'ChatCompletionBackward0';");
            migrationBuilder.Sql("UPDATE nodes SET name = 'LMJudgeEvaluatorBackward' WHERE name = 'LMJudgeEvaluatorBackward0';");
        }
    }
}
