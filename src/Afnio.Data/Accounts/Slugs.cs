using System.Collections.Frozen;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using AnyAscii;

namespace Afnio.Data.Accounts;

/// <summary>
/// Computes the slug python-slugify 8.0.4 returns for <c>slugify(text)</c> with all default arguments and
/// its default transliterator, text-unidecode 1.3: "Test Project" becomes "test-project". The client SDK
/// derives a project's slug itself, so the server's slug has to be the same string.
/// </summary>
/// <remarks>
/// The steps, in python-slugify's order: apostrophes become dashes; NFKD; transliteration to ASCII; HTML
/// character references (named, decimal, hexadecimal) are decoded; NFKD again; lowercase; apostrophes that
/// transliteration produced are dropped; commas between digits are dropped; every run of characters other than
/// ASCII letters, digits and <c>-</c> becomes one dash; runs of dashes collapse and dashes are trimmed.
/// Transliteration starts from <c>Transliteration.Transliterate</c>, corrected to text-unidecode's output where
/// the two differ on characters a project name plausibly contains (Latin, Greek, Cyrillic, Hangul, kana, common
/// CJK ideographs, punctuation, symbols, emoji). Outside those, for example in Arabic, Hebrew, Indic or Thai
/// script, rare ideographs or CJK compatibility characters, the two tables can disagree and so can the slugs.
/// </remarks>
public static partial class Slugs
{
    public static string Slugify(string text)
    {
        ArgumentNullException.ThrowIfNull(text);

        text = ApostropheRun().Replace(text, "-");
        text = Transliterate(Decompose(text));
        text = NamedReference().Replace(text, DecodeNamedReference);
        text = DecodeNumericReferences(text, DecimalReference(), NumberStyles.None);
        text = DecodeNumericReferences(text, HexadecimalReference(), NumberStyles.AllowHexSpecifier);
        text = Decompose(text).ToLowerInvariant();
        text = text.Replace("'", "", StringComparison.Ordinal);
        text = CommaBetweenDigits().Replace(text, "");
        text = Disallowed().Replace(text, "-");
        return DashRun().Replace(text, "-").Trim('-');
    }

    // NFKD. The repository runs with InvariantGlobalization, where string.Normalize leaves non-ASCII text as it
    // is, so the decompositions are listed here for the blocks a project name plausibly uses. Which combining
    // marks follow a base letter never shows in a slug (text-unidecode drops them, the last step turns them into
    // dashes), so one stands in for all of them.
    private static string Decompose(string text)
    {
        var builder = new StringBuilder(text.Length + 8);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsAscii(c))
            {
                builder.Append(c);
            }
            else if (char.IsSurrogatePair(text, i))
            {
                var codePoint = char.ConvertToUtf32(c, text[i + 1]);
                if (!TryAppendMathematical(builder, codePoint))
                {
                    builder.Append(c).Append(text[i + 1]);
                }

                i++;
            }
            else if (c is >= HangulFirst and <= HangulLast)
            {
                // 19 leading consonants × 21 vowels × 28 trailing consonants (the first of them none), in order.
                var index = c - HangulFirst;
                builder.Append((char)('\u1100' + index / 588)).Append((char)('\u1161' + index % 588 / 28));
                if (index % 28 != 0)
                {
                    builder.Append((char)('\u11A7' + index % 28));
                }
            }
            else if (c is >= '\uFF01' and <= '\uFF5E')
            {
                builder.Append((char)(c - ('\uFF01' - '!')));
            }
            else if (Bases.TryGetValue(c, out var letter))
            {
                builder.Append(letter).Append(AnyCombiningMark);
            }
            else if (Compatibility.TryGetValue(c, out var decomposition))
            {
                builder.Append(decomposition);
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }

    private const char HangulFirst = '\uAC00';
    private const char HangulLast = '\uD7A3';
    private const char AnyCombiningMark = '\u0301';

    // Mathematical Alphanumeric Symbols: letters and digits of one style after another, with unassigned holes.
    private static bool TryAppendMathematical(StringBuilder builder, int codePoint)
    {
        if (codePoint is < 0x1D400 or > 0x1D7FF
            || CharUnicodeInfo.GetUnicodeCategory(codePoint) == UnicodeCategory.OtherNotAssigned)
        {
            return false;
        }

        var offset = codePoint - 0x1D400;
        builder.Append(codePoint switch
        {
            <= 0x1D6A3 => offset % 52 < 26 ? (char)('A' + offset % 52) : (char)('a' + offset % 52 - 26),
            0x1D6A4 => 'ı',
            0x1D6A5 => 'ȷ',
            <= 0x1D7C9 => MathematicalGreek[(codePoint - 0x1D6A8) % MathematicalGreek.Length],
            0x1D7CA => 'Ϝ',
            0x1D7CB => 'ϝ',
            _ => (char)('0' + (codePoint - 0x1D7CE) % 10),
        });
        return true;
    }

    private const string MathematicalGreek = "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΘΣΤΥΦΧΨΩ∇αβγδεζηθικλμνξοπρςστυφχψω∂εθκφρπ";

    // text-unidecode maps each code point of the BMP through its table and drops everything above U+FFFF.
    private static string Transliterate(string text)
    {
        var builder = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsAscii(c))
            {
                builder.Append(c);
            }
            else if (char.IsSurrogatePair(text, i))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                // python-slugify can be handed a lone surrogate; text-unidecode turns it into "[?] ".
                builder.Append(' ');
            }
            else if (Overrides.TryGetValue(c, out var replacement) || TryGetRangeReplacement(c, out replacement))
            {
                builder.Append(replacement);
            }
            else
            {
                foreach (var b in Transliteration.Transliterate(new Rune(c)))
                {
                    builder.Append((char)b);
                }

                // text-unidecode ends each ideograph's syllable with a space, so ideographs become separate words.
                if (c is >= '\u4E00' and <= '\u9FA5')
                {
                    builder.Append(' ');
                }
            }
        }

        return builder.ToString();
    }

    private static bool TryGetRangeReplacement(char c, out string replacement)
    {
        foreach (var (first, last, value) in Ranges)
        {
            if (c >= first && c <= last)
            {
                replacement = value;
                return true;
            }
        }

        replacement = "";
        return false;
    }

    // WebUtility.HtmlDecode knows the HTML 4 names python-slugify decodes, and &apos;, which python-slugify leaves.
    private static string DecodeNamedReference(Match match) =>
        match.Groups[1].ValueSpan is "apos" ? match.Value : WebUtility.HtmlDecode(match.Value);

    // python-slugify decodes all references of a kind in one re.sub wrapped in try/except: one reference beyond
    // U+10FFFF (or with more digits than its int() call accepts) leaves every reference of that kind undecoded.
    private static string DecodeNumericReferences(string text, Regex reference, NumberStyles style)
    {
        var matches = reference.Matches(text);
        if (matches.Count == 0)
        {
            return text;
        }

        var values = new int[matches.Count];
        for (var i = 0; i < matches.Count; i++)
        {
            var digits = matches[i].Groups[1].ValueSpan;
            if (style == NumberStyles.None && digits.Length > MaxDecimalDigits)
            {
                return text;
            }

            // Seven digits of either base already exceed U+10FFFF, so longer values need not be parsed.
            digits = digits.TrimStart('0');
            if (digits.Length > 7)
            {
                return text;
            }

            values[i] = digits.IsEmpty ? 0 : int.Parse(digits, style, CultureInfo.InvariantCulture);
            if (values[i] > 0x10FFFF)
            {
                return text;
            }
        }

        var builder = new StringBuilder(text.Length);
        var end = 0;
        for (var i = 0; i < matches.Count; i++)
        {
            builder.Append(text, end, matches[i].Index - end);
            // python-slugify makes a lone surrogate of such a reference, which every later step treats like any
            // other disallowed character; U+FFFD behaves the same without letting two references pair up.
            var value = values[i];
            builder.Append(value is >= 0xD800 and <= 0xDFFF ? "\uFFFD" : char.ConvertFromUtf32(value));
            end = matches[i].Index + matches[i].Length;
        }

        return builder.Append(text, end, text.Length - end).ToString();
    }

    // python-slugify's int() call refuses longer decimal strings: the interpreter's default conversion limit.
    private const int MaxDecimalDigits = 4300;

    [GeneratedRegex("'+")]
    private static partial Regex ApostropheRun();

    [GeneratedRegex("&([A-Za-z0-9]+);")]
    private static partial Regex NamedReference();

    [GeneratedRegex("&#([0-9]+);")]
    private static partial Regex DecimalReference();

    [GeneratedRegex("&#x([0-9a-fA-F]+);")]
    private static partial Regex HexadecimalReference();

    // python-slugify's \d also matches non-ASCII digits, but a comma beside one ends up in a dash run either way.
    [GeneratedRegex("(?<=[0-9]),(?=[0-9])")]
    private static partial Regex CommaBetweenDigits();

    [GeneratedRegex("[^-a-zA-Z0-9]+")]
    private static partial Regex Disallowed();

    [GeneratedRegex("-{2,}")]
    private static partial Regex DashRun();

    // NFKD data, from the Unicode Character Database, for Latin-1 Supplement to Latin Extended-B, Spacing
    // Modifier Letters, Greek, Cyrillic, Latin Extended Additional, Greek Extended, General Punctuation to
    // Number Forms, CJK Symbols and Punctuation, Hiragana, Katakana, the Latin ligatures and the halfwidth and
    // fullwidth forms; Hangul syllables, fullwidth ASCII and mathematical letters are computed above.
    private static readonly FrozenDictionary<char, char> Bases = LettersWithMarks
        .Split([' ', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries)
        .ToFrozenDictionary(pair => pair[0], pair => pair[1]);

    // Each pair is a character whose decomposition is one base character and combining marks, then that base.
    private const string LettersWithMarks = """
        ÀA ÁA ÂA ÃA ÄA ÅA ÇC ÈE ÉE ÊE ËE ÌI ÍI ÎI ÏI ÑN ÒO ÓO ÔO ÕO ÖO ÙU ÚU ÛU ÜU ÝY àa áa âa ãa äa åa çc èe ée
        êe ëe ìi íi îi ïi ñn òo óo ôo õo öo ùu úu ûu üu ýy ÿy ĀA āa ĂA ăa ĄA ąa ĆC ćc ĈC ĉc ĊC ċc ČC čc ĎD ďd ĒE
        ēe ĔE ĕe ĖE ėe ĘE ęe ĚE ěe ĜG ĝg ĞG ğg ĠG ġg ĢG ģg ĤH ĥh ĨI ĩi ĪI īi ĬI ĭi ĮI įi İI ĴJ ĵj ĶK ķk ĹL ĺl ĻL
        ļl ĽL ľl ŃN ńn ŅN ņn ŇN ňn ŌO ōo ŎO ŏo ŐO őo ŔR ŕr ŖR ŗr ŘR řr ŚS śs ŜS ŝs ŞS şs ŠS šs ŢT ţt ŤT ťt ŨU ũu
        ŪU ūu ŬU ŭu ŮU ůu ŰU űu ŲU ųu ŴW ŵw ŶY ŷy ŸY ŹZ źz ŻZ żz ŽZ žz ƠO ơo ƯU ưu ǍA ǎa ǏI ǐi ǑO ǒo ǓU ǔu ǕU ǖu
        ǗU ǘu ǙU ǚu ǛU ǜu ǞA ǟa ǠA ǡa ǢÆ ǣæ ǦG ǧg ǨK ǩk ǪO ǫo ǬO ǭo ǮƷ ǯʒ ǰj ǴG ǵg ǸN ǹn ǺA ǻa ǼÆ ǽæ ǾØ ǿø ȀA ȁa
        ȂA ȃa ȄE ȅe ȆE ȇe ȈI ȉi ȊI ȋi ȌO ȍo ȎO ȏo ȐR ȑr ȒR ȓr ȔU ȕu ȖU ȗu ȘS șs ȚT țt ȞH ȟh ȦA ȧa ȨE ȩe ȪO ȫo ȬO
        ȭo ȮO ȯo ȰO ȱo ȲY ȳy ΆΑ ΈΕ ΉΗ ΊΙ ΌΟ ΎΥ ΏΩ ΐι ΪΙ ΫΥ άα έε ήη ίι ΰυ ϊι ϋυ όο ύυ ώω ϓΥ ϔΥ ЀЕ ЁЕ ЃГ ЇІ ЌК ЍИ
        ЎУ ЙИ йи ѐе ёе ѓг їі ќк ѝи ўу ѶѴ ѷѵ ӁЖ ӂж ӐА ӑа ӒА ӓа ӖЕ ӗе ӚӘ ӛә ӜЖ ӝж ӞЗ ӟз ӢИ ӣи ӤИ ӥи ӦО ӧо ӪӨ ӫө ӬЭ
        ӭэ ӮУ ӯу ӰУ ӱу ӲУ ӳу ӴЧ ӵч ӸЫ ӹы ḀA ḁa ḂB ḃb ḄB ḅb ḆB ḇb ḈC ḉc ḊD ḋd ḌD ḍd ḎD ḏd ḐD ḑd ḒD ḓd ḔE ḕe ḖE ḗe
        ḘE ḙe ḚE ḛe ḜE ḝe ḞF ḟf ḠG ḡg ḢH ḣh ḤH ḥh ḦH ḧh ḨH ḩh ḪH ḫh ḬI ḭi ḮI ḯi ḰK ḱk ḲK ḳk ḴK ḵk ḶL ḷl ḸL ḹl ḺL
        ḻl ḼL ḽl ḾM ḿm ṀM ṁm ṂM ṃm ṄN ṅn ṆN ṇn ṈN ṉn ṊN ṋn ṌO ṍo ṎO ṏo ṐO ṑo ṒO ṓo ṔP ṕp ṖP ṗp ṘR ṙr ṚR ṛr ṜR ṝr
        ṞR ṟr ṠS ṡs ṢS ṣs ṤS ṥs ṦS ṧs ṨS ṩs ṪT ṫt ṬT ṭt ṮT ṯt ṰT ṱt ṲU ṳu ṴU ṵu ṶU ṷu ṸU ṹu ṺU ṻu ṼV ṽv ṾV ṿv ẀW
        ẁw ẂW ẃw ẄW ẅw ẆW ẇw ẈW ẉw ẊX ẋx ẌX ẍx ẎY ẏy ẐZ ẑz ẒZ ẓz ẔZ ẕz ẖh ẗt ẘw ẙy ẛs ẠA ạa ẢA ảa ẤA ấa ẦA ầa ẨA
        ẩa ẪA ẫa ẬA ậa ẮA ắa ẰA ằa ẲA ẳa ẴA ẵa ẶA ặa ẸE ẹe ẺE ẻe ẼE ẽe ẾE ếe ỀE ềe ỂE ểe ỄE ễe ỆE ệe ỈI ỉi ỊI ịi
        ỌO ọo ỎO ỏo ỐO ốo ỒO ồo ỔO ổo ỖO ỗo ỘO ộo ỚO ớo ỜO ờo ỞO ởo ỠO ỡo ỢO ợo ỤU ụu ỦU ủu ỨU ứu ỪU ừu ỬU ửu ỮU
        ữu ỰU ựu ỲY ỳy ỴY ỵy ỶY ỷy ỸY ỹy ἀα ἁα ἂα ἃα ἄα ἅα ἆα ἇα ἈΑ ἉΑ ἊΑ ἋΑ ἌΑ ἍΑ ἎΑ ἏΑ ἐε ἑε ἒε ἓε ἔε ἕε ἘΕ ἙΕ
        ἚΕ ἛΕ ἜΕ ἝΕ ἠη ἡη ἢη ἣη ἤη ἥη ἦη ἧη ἨΗ ἩΗ ἪΗ ἫΗ ἬΗ ἭΗ ἮΗ ἯΗ ἰι ἱι ἲι ἳι ἴι ἵι ἶι ἷι ἸΙ ἹΙ ἺΙ ἻΙ ἼΙ ἽΙ ἾΙ
        ἿΙ ὀο ὁο ὂο ὃο ὄο ὅο ὈΟ ὉΟ ὊΟ ὋΟ ὌΟ ὍΟ ὐυ ὑυ ὒυ ὓυ ὔυ ὕυ ὖυ ὗυ ὙΥ ὛΥ ὝΥ ὟΥ ὠω ὡω ὢω ὣω ὤω ὥω ὦω ὧω ὨΩ ὩΩ
        ὪΩ ὫΩ ὬΩ ὭΩ ὮΩ ὯΩ ὰα άα ὲε έε ὴη ήη ὶι ίι ὸο όο ὺυ ύυ ὼω ώω ᾀα ᾁα ᾂα ᾃα ᾄα ᾅα ᾆα ᾇα ᾈΑ ᾉΑ ᾊΑ ᾋΑ ᾌΑ ᾍΑ ᾎΑ
        ᾏΑ ᾐη ᾑη ᾒη ᾓη ᾔη ᾕη ᾖη ᾗη ᾘΗ ᾙΗ ᾚΗ ᾛΗ ᾜΗ ᾝΗ ᾞΗ ᾟΗ ᾠω ᾡω ᾢω ᾣω ᾤω ᾥω ᾦω ᾧω ᾨΩ ᾩΩ ᾪΩ ᾫΩ ᾬΩ ᾭΩ ᾮΩ ᾯΩ ᾰα ᾱα
        ᾲα ᾳα ᾴα ᾶα ᾷα ᾸΑ ᾹΑ ᾺΑ ΆΑ ᾼΑ ῂη ῃη ῄη ῆη ῇη ῈΕ ΈΕ ῊΗ ΉΗ ῌΗ ῐι ῑι ῒι ΐι ῖι ῗι ῘΙ ῙΙ ῚΙ ΊΙ ῠυ ῡυ ῢυ ΰυ ῤρ
        ῥρ ῦυ ῧυ ῨΥ ῩΥ ῪΥ ΎΥ ῬΡ ῲω ῳω ῴω ῶω ῷω ῸΟ ΌΟ ῺΩ ΏΩ ῼΩ ÅA がか ぎき ぐく げけ ごこ ざさ じし ずす ぜせ ぞそ だた ぢち づつ でて どと ばは
        ぱは びひ ぴひ ぶふ ぷふ べへ ぺへ ぼほ ぽほ ゔう ゞゝ ガカ ギキ グク ゲケ ゴコ ザサ ジシ ズス ゼセ ゾソ ダタ ヂチ ヅツ デテ ドト バハ パハ ビヒ ピヒ ブフ プフ ベヘ ペヘ ボホ
        ポホ ヴウ ヷワ ヸヰ ヹヱ ヺヲ ヾヽ
        """;

    // The other decompositions in those blocks, in full.
    private static readonly FrozenDictionary<char, string> Compatibility = new Dictionary<char, string>
    {
        { '\u00A0', " " }, { '\u00A8', " \u0308" }, { '\u00AA', "a" }, { '\u00AF', " \u0304" }, { '\u00B2', "2" },
        { '\u00B3', "3" }, { '\u00B4', " \u0301" }, { '\u00B5', "μ" }, { '\u00B8', " \u0327" }, { '\u00B9', "1" },
        { '\u00BA', "o" }, { '¼', "1⁄4" }, { '½', "1⁄2" }, { '¾', "3⁄4" }, { 'Ĳ', "IJ" }, { 'ĳ', "ij" }, { 'Ŀ', "L·" },
        { 'ŀ', "l·" }, { 'ŉ', "ʼn" }, { '\u017F', "s" }, { 'Ǆ', "DZ\u030C" }, { 'ǅ', "Dz\u030C" }, { 'ǆ', "dz\u030C" },
        { 'Ǉ', "LJ" }, { 'ǈ', "Lj" }, { 'ǉ', "lj" }, { 'Ǌ', "NJ" }, { 'ǋ', "Nj" }, { 'ǌ', "nj" }, { 'Ǳ', "DZ" },
        { 'ǲ', "Dz" }, { 'ǳ', "dz" }, { '\u02B0', "h" }, { '\u02B1', "ɦ" }, { '\u02B2', "j" }, { '\u02B3', "r" },
        { '\u02B4', "ɹ" }, { '\u02B5', "ɻ" }, { '\u02B6', "ʁ" }, { '\u02B7', "w" }, { '\u02B8', "y" },
        { '\u02D8', " \u0306" }, { '\u02D9', " \u0307" }, { '\u02DA', " \u030A" }, { '\u02DB', " \u0328" },
        { '\u02DC', " \u0303" }, { '\u02DD', " \u030B" }, { '\u02E0', "ɣ" }, { '\u02E1', "l" }, { '\u02E2', "s" },
        { '\u02E3', "x" }, { '\u02E4', "ʕ" }, { '\u0374', "ʹ" }, { 'ͺ', " \u0345" }, { '\u037E', ";" },
        { '\u0384', " \u0301" }, { '\u0385', " \u0308\u0301" }, { '\u0387', "·" }, { '\u03D0', "β" }, { '\u03D1', "θ" },
        { '\u03D2', "Υ" }, { '\u03D5', "φ" }, { '\u03D6', "π" }, { '\u03F0', "κ" }, { '\u03F1', "ρ" },
        { '\u03F2', "ς" }, { '\u03F4', "Θ" }, { '\u03F5', "ε" }, { '\u03F9', "Σ" }, { 'ẚ', "aʾ" },
        { '\u1FBD', " \u0313" }, { '\u1FBE', "ι" }, { '\u1FBF', " \u0313" }, { '\u1FC0', " \u0342" },
        { '\u1FC1', " \u0308\u0342" }, { '\u1FCD', " \u0313\u0300" }, { '\u1FCE', " \u0313\u0301" },
        { '\u1FCF', " \u0313\u0342" }, { '\u1FDD', " \u0314\u0300" }, { '\u1FDE', " \u0314\u0301" },
        { '\u1FDF', " \u0314\u0342" }, { '\u1FED', " \u0308\u0300" }, { '\u1FEE', " \u0308\u0301" }, { '\u1FEF', "`" },
        { '\u1FFD', " \u0301" }, { '\u1FFE', " \u0314" }, { '\u2000', " " }, { '\u2001', " " }, { '\u2002', " " },
        { '\u2003', " " }, { '\u2004', " " }, { '\u2005', " " }, { '\u2006', " " }, { '\u2007', " " },
        { '\u2008', " " }, { '\u2009', " " }, { '\u200A', " " }, { '\u2011', "‐" }, { '\u2017', " \u0333" },
        { '\u2024', "." }, { '\u2025', ".." }, { '\u2026', "..." }, { '\u202F', " " }, { '\u2033', "′′" },
        { '\u2034', "′′′" }, { '\u2036', "‵‵" }, { '\u2037', "‵‵‵" }, { '\u203C', "!!" }, { '\u203E', " \u0305" },
        { '\u2047', "??" }, { '\u2048', "?!" }, { '\u2049', "!?" }, { '\u2057', "′′′′" }, { '\u205F', " " },
        { '\u2070', "0" }, { '\u2071', "i" }, { '\u2074', "4" }, { '\u2075', "5" }, { '\u2076', "6" },
        { '\u2077', "7" }, { '\u2078', "8" }, { '\u2079', "9" }, { '\u207A', "+" }, { '\u207B', "−" },
        { '\u207C', "=" }, { '\u207D', "(" }, { '\u207E', ")" }, { '\u207F', "n" }, { '\u2080', "0" },
        { '\u2081', "1" }, { '\u2082', "2" }, { '\u2083', "3" }, { '\u2084', "4" }, { '\u2085', "5" },
        { '\u2086', "6" }, { '\u2087', "7" }, { '\u2088', "8" }, { '\u2089', "9" }, { '\u208A', "+" },
        { '\u208B', "−" }, { '\u208C', "=" }, { '\u208D', "(" }, { '\u208E', ")" }, { '\u2090', "a" },
        { '\u2091', "e" }, { '\u2092', "o" }, { '\u2093', "x" }, { '\u2094', "ə" }, { '\u2095', "h" },
        { '\u2096', "k" }, { '\u2097', "l" }, { '\u2098', "m" }, { '\u2099', "n" }, { '\u209A', "p" },
        { '\u209B', "s" }, { '\u209C', "t" }, { '\u20A8', "Rs" }, { '\u2100', "a/c" }, { '\u2101', "a/s" },
        { '\u2102', "C" }, { '\u2103', "°C" }, { '\u2105', "c/o" }, { '\u2106', "c/u" }, { '\u2107', "Ɛ" },
        { '\u2109', "°F" }, { '\u210A', "g" }, { '\u210B', "H" }, { '\u210C', "H" }, { '\u210D', "H" },
        { '\u210E', "h" }, { '\u210F', "ħ" }, { '\u2110', "I" }, { '\u2111', "I" }, { '\u2112', "L" },
        { '\u2113', "l" }, { '\u2115', "N" }, { '\u2116', "No" }, { '\u2119', "P" }, { '\u211A', "Q" },
        { '\u211B', "R" }, { '\u211C', "R" }, { '\u211D', "R" }, { '\u2120', "SM" }, { '\u2121', "TEL" },
        { '\u2122', "TM" }, { '\u2124', "Z" }, { '\u2126', "Ω" }, { '\u2128', "Z" }, { '\u212A', "K" },
        { '\u212C', "B" }, { '\u212D', "C" }, { '\u212F', "e" }, { '\u2130', "E" }, { '\u2131', "F" },
        { '\u2133', "M" }, { '\u2134', "o" }, { '\u2135', "א" }, { '\u2136', "ב" }, { '\u2137', "ג" },
        { '\u2138', "ד" }, { '\u2139', "i" }, { '\u213B', "FAX" }, { '\u213C', "π" }, { '\u213D', "γ" },
        { '\u213E', "Γ" }, { '\u213F', "Π" }, { '\u2140', "∑" }, { '\u2145', "D" }, { '\u2146', "d" },
        { '\u2147', "e" }, { '\u2148', "i" }, { '\u2149', "j" }, { '⅐', "1⁄7" }, { '⅑', "1⁄9" }, { '⅒', "1⁄10" },
        { '⅓', "1⁄3" }, { '⅔', "2⁄3" }, { '⅕', "1⁄5" }, { '⅖', "2⁄5" }, { '⅗', "3⁄5" }, { '⅘', "4⁄5" }, { '⅙', "1⁄6" },
        { '⅚', "5⁄6" }, { '⅛', "1⁄8" }, { '⅜', "3⁄8" }, { '⅝', "5⁄8" }, { '⅞', "7⁄8" }, { '⅟', "1⁄" },
        { '\u2160', "I" }, { 'Ⅱ', "II" }, { 'Ⅲ', "III" }, { 'Ⅳ', "IV" }, { '\u2164', "V" }, { 'Ⅵ', "VI" },
        { 'Ⅶ', "VII" }, { 'Ⅷ', "VIII" }, { 'Ⅸ', "IX" }, { '\u2169', "X" }, { 'Ⅺ', "XI" }, { 'Ⅻ', "XII" },
        { '\u216C', "L" }, { '\u216D', "C" }, { '\u216E', "D" }, { '\u216F', "M" }, { '\u2170', "i" }, { 'ⅱ', "ii" },
        { 'ⅲ', "iii" }, { 'ⅳ', "iv" }, { '\u2174', "v" }, { 'ⅵ', "vi" }, { 'ⅶ', "vii" }, { 'ⅷ', "viii" }, { 'ⅸ', "ix" },
        { '\u2179', "x" }, { 'ⅺ', "xi" }, { 'ⅻ', "xii" }, { '\u217C', "l" }, { '\u217D', "c" }, { '\u217E', "d" },
        { '\u217F', "m" }, { '↉', "0⁄3" }, { '\u3000', " " }, { '\u3036', "〒" }, { '\u3038', "十" }, { '\u3039', "卄" },
        { '\u303A', "卅" }, { '\u309B', " \u3099" }, { '\u309C', " \u309A" }, { 'ゟ', "より" }, { 'ヿ', "コト" },
        { 'ﬀ', "ff" }, { 'ﬁ', "fi" }, { 'ﬂ', "fl" }, { 'ﬃ', "ffi" }, { 'ﬄ', "ffl" }, { 'ﬅ', "st" }, { 'ﬆ', "st" },
        { '\uFF5F', "⦅" }, { '\uFF60', "⦆" }, { '\uFF61', "。" }, { '\uFF62', "「" }, { '\uFF63', "」" },
        { '\uFF64', "、" }, { '\uFF65', "・" }, { '\uFF66', "ヲ" }, { '\uFF67', "ァ" }, { '\uFF68', "ィ" },
        { '\uFF69', "ゥ" }, { '\uFF6A', "ェ" }, { '\uFF6B', "ォ" }, { '\uFF6C', "ャ" }, { '\uFF6D', "ュ" },
        { '\uFF6E', "ョ" }, { '\uFF6F', "ッ" }, { '\uFF70', "ー" }, { '\uFF71', "ア" }, { '\uFF72', "イ" },
        { '\uFF73', "ウ" }, { '\uFF74', "エ" }, { '\uFF75', "オ" }, { '\uFF76', "カ" }, { '\uFF77', "キ" },
        { '\uFF78', "ク" }, { '\uFF79', "ケ" }, { '\uFF7A', "コ" }, { '\uFF7B', "サ" }, { '\uFF7C', "シ" },
        { '\uFF7D', "ス" }, { '\uFF7E', "セ" }, { '\uFF7F', "ソ" }, { '\uFF80', "タ" }, { '\uFF81', "チ" },
        { '\uFF82', "ツ" }, { '\uFF83', "テ" }, { '\uFF84', "ト" }, { '\uFF85', "ナ" }, { '\uFF86', "ニ" },
        { '\uFF87', "ヌ" }, { '\uFF88', "ネ" }, { '\uFF89', "ノ" }, { '\uFF8A', "ハ" }, { '\uFF8B', "ヒ" },
        { '\uFF8C', "フ" }, { '\uFF8D', "ヘ" }, { '\uFF8E', "ホ" }, { '\uFF8F', "マ" }, { '\uFF90', "ミ" },
        { '\uFF91', "ム" }, { '\uFF92', "メ" }, { '\uFF93', "モ" }, { '\uFF94', "ヤ" }, { '\uFF95', "ユ" },
        { '\uFF96', "ヨ" }, { '\uFF97', "ラ" }, { '\uFF98', "リ" }, { '\uFF99', "ル" }, { '\uFF9A', "レ" },
        { '\uFF9B', "ロ" }, { '\uFF9C', "ワ" }, { '\uFF9D', "ン" }, { '\uFF9E', "\u3099" }, { '\uFF9F', "\u309A" },
        { '\uFFE0', "¢" }, { '\uFFE1', "£" }, { '\uFFE2', "¬" }, { '\uFFE3', " \u0304" }, { '\uFFE4', "¦" },
        { '\uFFE5', "¥" }, { '\uFFE6', "₩" }, { '\uFFE8', "│" }, { '\uFFE9', "←" }, { '\uFFEA', "↑" },
        { '\uFFEB', "→" }, { '\uFFEC', "↓" }, { '\uFFED', "■" }, { '\uFFEE', "○" },
    }.ToFrozenDictionary();

    // Where text-unidecode's output differs from Transliteration.Transliterate's in a way that changes the slug,
    // text-unidecode's output verbatim ("[?]" is its marker for a code point it has no entry for; it becomes a dash).
    private static readonly FrozenDictionary<char, string> Overrides = BuildOverrides();

    private static FrozenDictionary<char, string> BuildOverrides()
    {
        var overrides = new Dictionary<char, string>
        {
            // Latin-1 Supplement, Latin Extended-A/B, and the IPA letters Azerbaijani's ə and ǯ's base ʒ
            { '¢', "C/" }, { '£', "PS" }, { '¥', "Y=" }, { '§', "SS" }, { '×', "x" }, { 'ĸ', "k" }, { 'ƍ', "d" },
            { 'Ǝ', "3" }, { 'Ə', "@" }, { 'ƕ', "hv" }, { 'Ƣ', "OI" }, { 'ƣ', "oi" }, { 'Ʀ', "YR" }, { 'Ʊ', "Y" },
            { 'Ƹ', "ZH" }, { 'ƹ', "zh" }, { 'ƻ', "2" }, { 'ǀ', "|" }, { 'ǁ', "||" }, { 'ǂ', "|=" }, { 'ǃ', "!" },
            { 'ǝ', "@" }, { 'Ƕ', "HV" }, { 'Ɂ', "[?]" }, { 'ɂ', "[?]" }, { 'Ʌ', "^" }, { 'ə', "@" }, { 'ʒ', "Z" },

            // Greek
            { 'Β', "B" }, { 'Η', "E" }, { 'Ξ', "Ks" }, { 'Υ', "U" }, { 'Φ', "Ph" }, { 'Χ', "Kh" }, { 'β', "b" },
            { 'η', "e" }, { 'υ', "u" }, { 'φ', "ph" }, { 'χ', "kh" },

            // Cyrillic
            { 'Є', "E" }, { 'Ћ', "Tsh" }, { 'Ю', "Iu" }, { 'Я', "Ia" }, { 'ю', "iu" }, { 'я', "ia" }, { 'ћ', "tsh" },
            { '҂', "*1000*" }, { '\u0483', "" }, { '\u0488', "*100.000*" }, { '\u0489', "*1.000.000*" }, { 'Ҋ', "[?]" },
            { 'ҋ', "[?]" }, { 'Ҍ', "\"" }, { 'ҍ', "\"" }, { 'Ҏ', "R'" }, { 'ҏ', "r'" }, { 'Ғ', "G'" }, { 'ғ', "g'" },
            { 'Ҕ', "G'" }, { 'ҕ', "g'" }, { 'Җ', "Zh'" }, { 'җ', "zh'" }, { 'Қ', "K'" }, { 'қ', "k'" }, { 'Ҝ', "K'" },
            { 'ҝ', "k'" }, { 'Ҟ', "K'" }, { 'ҟ', "k'" }, { 'Ҡ', "K'" }, { 'ҡ', "k'" }, { 'Ң', "N'" }, { 'ң', "n'" },
            { 'Ҧ', "P'" }, { 'ҧ', "p'" }, { 'Ҩ', "Kh" }, { 'ҩ', "kh" }, { 'Ҭ', "T'" }, { 'ҭ', "t'" }, { 'Ҳ', "Kh'" },
            { 'ҳ', "kh'" }, { 'Ҵ', "Tts" }, { 'ҵ', "tts" }, { 'Ҷ', "Ch'" }, { 'ҷ', "ch'" }, { 'Ҹ', "Ch'" },
            { 'ҹ', "ch'" }, { 'Ӏ', "`" }, { 'Ӄ', "K'" }, { 'ӄ', "k'" }, { 'Ӆ', "[?]" }, { 'ӆ', "[?]" }, { 'Ӈ', "N'" },
            { 'ӈ', "n'" }, { 'Ӊ', "[?]" }, { 'ӊ', "[?]" }, { 'Ӌ', "Ch" }, { 'ӌ', "ch" }, { 'Ӎ', "[?]" }, { 'ӎ', "[?]" },
            { 'ӏ', "[?]" }, { 'Ә', "@" }, { 'ә', "@" }, { 'Ӷ', "[?]" }, { 'ӷ', "[?]" }, { 'Ӻ', "[?]" }, { 'ӻ', "[?]" },
            { 'Ӽ', "[?]" }, { 'ӽ', "[?]" }, { 'Ӿ', "[?]" }, { 'ӿ', "[?] " },

            // Hangul jamo (Hangul syllables decompose into these)
            { 'ᄁ', "gg" }, { 'ᄄ', "dd" }, { 'ᄅ', "r" }, { 'ᄈ', "bb" }, { 'ᄎ', "c" }, { 'ᅯ', "weo" }, { 'ᅴ', "yi" },
            { 'ᆩ', "gg" }, { 'ᆾ', "c" },

            // General Punctuation
            { '\u200B', " " }, { '‚', "," }, { '⁊', "7" }, { '⁋', "PP" }, { '\u2060', "[?]" }, { '\u2061', "[?]" },
            { '\u2062', "[?]" }, { '\u2063', "[?]" }, { '\u2064', "[?]" }, { '\u2066', "[?]" }, { '\u2067', "[?]" },
            { '\u2068', "[?]" }, { '\u2069', "[?]" },

            // Currency Symbols
            { '₠', "ECU" }, { '₡', "CL" }, { '₣', "FF" }, { '₥', "mil" }, { '₪', "NS" },

            // Letterlike Symbols, the Hebrew bet that ℶ decomposes to, Number Forms
            { '℄', "" }, { '℈', "" }, { '℔', "" }, { '℗', "" }, { '℘', "" }, { '℞', "" }, { '℟', "" }, { '℣', "" },
            { '℥', "" }, { '℧', "" }, { '℩', "" }, { '℮', "" }, { 'Ⅎ', "" }, { '℺', "" }, { '⅁', "[?]" },
            { '⅂', "[?]" }, { '⅃', "[?]" }, { '⅄', "[?]" }, { '⅊', "[?]" }, { '⅌', "[?]" }, { '⅍', "[?]" },
            { 'ⅎ', "[?]" }, { '⅏', "[?]" }, { 'ב', "b" }, { 'ↀ', "(D" }, { 'ↁ', "D)" },

            // CJK Symbols and Punctuation, Hiragana, Katakana
            { '〓', "X " }, { '〞', "''" }, { '〰', "~" }, { '〵', "" }, { '〷', " // " }, { '〼', "[?]" }, { '〽', "[?]" },
            { '〾', "" }, { '〿', "" }, { 'し', "si" }, { 'ち', "ti" }, { 'っ', "tu" }, { 'つ', "tu" }, { 'ふ', "hu" },
            { 'ゐ', "wi" }, { 'ゑ', "we" }, { 'を', "wo" }, { 'ゕ', "[?]" }, { 'ゖ', "[?]" }, { '\u309A', "" },
            { 'シ', "si" }, { 'チ', "ti" }, { 'ッ', "tu" }, { 'ツ', "tu" }, { 'フ', "hu" }, { 'ヰ', "wi" }, { 'ヱ', "we" },
            { 'ヲ', "wo" }, { 'ヶ', "ke" }, { '・', "" },

            // The object replacement and replacement characters, which text decoded with errors can contain
            { '\uFFFC', "" }, { '\uFFFD', "" },

            // Symbols inside the ranges below that text-unidecode spells as letters
            { '↷', "V" }, { '↺', "V" }, { '╳', "X" }, { '▼', "V" }, { '▽', "V" },
            { '▾', "V" }, { '▿', "V" }, { '◯', "O" },
        };

        foreach (var entry in CommonHanziReadings.Split([' ', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries))
        {
            overrides.Add(entry[0], entry[1..] + " ");
        }

        return overrides.ToFrozenDictionary();
    }

    // Ideographs from the common-use sets (GB 2312 level 1, Big5 level 1, JIS X 0208 level 1) that text-unidecode
    // reads differently from Transliteration.Transliterate; each is followed by a space like every other ideograph.
    private const string CommonHanziReadings = """
        万Mo 么Yao 乾Gan 了Liao 亏Yu 什Shi 仮Jia 价Jie 伝Chuan 伺Si 佛Fo 佝Kou 侗Tong 価Jia 俟Si 倭Wei 偲Si 傀Gui 冒Mou 凧Tako 凪Ci
        刨Bao 刹Cha 剋Ke 剎Cha 劲Jing 勁Jing 勒Le 勦Jiao 匁Mwun 匂Nay 匙Chi 卜Bu 卡Qia 厂Han 叨Tao 叶Xie 吭Hang 吶Ne 呆Ai 呐Ne 呢Ni
        咋Zha 咳Ke 哆Chi 哦E 唄Bai 啁Zhou 啜Chuo 啡Pei 喀Ke 喔Wo 嘿Mo 噌Cheng 噢Yu 噱Jue 噶Ge 噺Sin 嚼Jiao 囲Wei 地Di 坏Pi 塀Pyeng
        塁Toride 姥Mu 姶Yan 娜Nuo 嬬Xu 宁Zhu 寧Zhu 岨Ju 峒Tong 峠Sang 崤Yao 崴Wei 差Chai 帧Zheng 广Yan 彊Qiang 徵Zheng 忪Zhong
        恫Tong 惊Liang 惚Bu 戯Xi 戻Li 扑Bu 払Fu 拎Ling 拓Tuo 括Gua 拶Zan 挎Ku 挝Zhua 掖Yi 掴Guo 掺Xian 携Xi 摑Guo 摻Xian 撂Lue 撾Zhua
        擭Hu 攜Xi 暍He 曳Yi 朝Zhao 朮Zhu 术Zhu 朴Po 杓Shao 杢Moku 枠Waku 柁Duo 柏Bo 柜Ju 柞Zuo 柵Zha 査Cha 栃Hoy 栢Bo 桁Hang 桝Masu
        桧Kuai 梡Huan 械Jie 棹Zhuo 椛Momiji 楯Shun 榊Sakaki 槛Jian 槭Cu 樗Shu 橈Nao 檜Kuai 檻Jian 櫛Jie 歙Xi 殻Que 汉Yi 沈Chen
        沏Qie 沓Ta 泊Bo 泜Chi 洁Ji 淆Yao 渋Shibui 渓Tani 湩Zhong 湮Yin 漯Lei 潠Xuan 澠Min 炔Gui 烃Jing 烙Luo 熟Shou 燾Chou 爪Zhua
        牠Tuo 犛Li 犠Ikenie 狛Po 猎Xi 猟Kari 獣Swu 琊Ye 琢Zhuo 甽Quan 畠Cen 畷Chuo 痺Bei 瘪Pie 癌Yan 癟Pie 癣Xian 癬Xian 盯Cheng
        着Zhao 睥Bi 砠Qu 砿Aragane 硅Huo 祇Zhi 禅Shan 禰Ni 离Chi 种Chong 笹Sey 筈Gua 簿Bo 籲Xu 粂Kume 粍Li 粘Nian 粳Geng 紮Zha
        絀Zhuo 続Sok 緝Qi 縄Nawa 縝Zhen 縯Yin 繊Sem 繋Xi 缉Qi 羋Mie 耑Zhuan 耙Pa 聒Gua 肋Le 肮Hang 胶Xiao 胺E 脈Mo 脯Fu 脳Noy 腋Yi
        腌An 膘Piao 臢Zang 舎Yadoru 艘Sao 芍Shuo 芣Fou 苧Zhu 茄Qie 茧Chong 茬Chi 莆Fu 莘Xin 莞Wan 葉Xie 蓿Su 蔫Yan 蕃Fan 薄Bo 薛Xie
        薺Qi 藉Jie 蘋Pin 蚕Tian 蛰Zhi 蛻Shui 蜕Shui 蜗Gua 蜡Zha 蝎He 蝸Gua 螫Zhe 蟯Rao 蠕Ruan 血Xie 衹Qi 袷Jia 裳Chang 褪Tun 触Hong
        詑Tuo 詨Jiao 誧Pu 諌Jian 诌Zou 谁Shui 豉Shi 貉He 賃Ren 賜Si 赁Ren 赐Si 蹊Xi 蹣Man 躂Ta 軽Qing 轍Che 辙Che 辻Sip 込Ip 还Huan
        适Gua 還Huan 郃Ge 都Du 酪Luo 酵Xiao 醱Po 釐Li 釭Gong 鈸Ba 鈿Dian 鉄Tie 鉚Liu 鋲Pyeng 鎘Ge 鑓Yari 铆Liu 铣Xian 锗Duo 镐Hao
        長Chang 长Chang 閡He 陂Po 隄Ti 隼Zhun 雋Jun 韹Heng 頡Jie 顫Zhan 颤Zhan 驃Piao 驟Zou 骤Zou 鬲Li 鯈You 鯖Qing 鯽Ji 鰥Yin 鱖Jue
        鴫Shigi 麼Mo 麿Ma 黌Heng 齜Zi
        """;

    // Whole blocks where text-unidecode behaves uniformly: " " where it gives a separator (mostly "[?]", its
    // marker for code points it has no entry for), "" where it gives nothing. The few code points inside that
    // NFKD would turn into letters (compatibility ideographs, for one) are beyond the decompositions above.
    private static readonly (char First, char Last, string Value)[] Ranges =
    [
        ('\u0500', '\u052F', " "), // Cyrillic Supplement
        ('\u20B0', '\u20CF', " "), // currency signs newer than text-unidecode's table (₹, ₺, ₽, ₿, …)
        ('\u2182', '\u218F', " "), // Roman numerals and digit forms newer than text-unidecode's table
        ('\u2190', '\u23FF', " "), // arrows, mathematical operators, miscellaneous technical
        ('\u2400', '\u2426', ""), // control pictures and OCR: nothing for Unicode 3.0's, a separator after
        ('\u2427', '\u243F', " "),
        ('\u2440', '\u244A', ""),
        ('\u244B', '\u245F', " "),
        ('\u24EB', '\u24FF', " "), // negative circled numbers
        ('\u2500', '\u25FF', " "), // box drawing, block elements, geometric shapes
        ('\u2600', '\u2613', ""), // miscellaneous symbols and dingbats: nothing for those Unicode 3.0 had,
        ('\u2614', '\u2618', " "), // a separator for later additions (most emoji-style symbols)
        ('\u2619', '\u2671', ""),
        ('\u2672', '\u2700', " "),
        ('\u2701', '\u275E', ""),
        ('\u275F', '\u2760', " "),
        ('\u2761', '\u27AF', ""),
        ('\u27B0', '\u27B0', " "),
        ('\u27B1', '\u27BE', ""),
        ('\u27BF', '\u27FF', " "),
        ('\u2900', '\u2BFF', " "), // supplemental arrows and mathematical operators, miscellaneous symbols (⭐)
        ('\u2C60', '\u2C7F', " "), // Latin Extended-C, -D and -E, newer than text-unidecode's table
        ('\uA720', '\uA7FF', " "),
        ('\uAB30', '\uAB6F', " "),
        ('\u3400', '\u4DFF', " "), // CJK Unified Ideographs Extension A, Yijing hexagrams
        ('\u9FA6', '\u9FFF', " "), // CJK Unified Ideographs newer than text-unidecode's table
        ('\uE000', '\uF8FF', " "), // private use
        ('\uF900', '\uFAFF', " "), // CJK compatibility ideographs that have no unified equivalent
        ('\uFE00', '\uFE0F', " "), // variation selectors, including the emoji presentation selector
    ];
}

